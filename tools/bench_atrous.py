#!/usr/bin/env python
"""Benchmark: our hole (atrous) convolution against cuDNN's dilated convolution.

Ours is deeplab_caffe.ops.conv2d_hole (Caffe-style hole im2col + GEMM, bounded column buffer);
the reference is torch.nn.functional.conv2d(dilation=hole) with cudnn.benchmark on (on the CPU:
PyTorch's CPU convolution).  DeepLab v1 layer shapes at a 513x513 input (N=1) and a 321x321
input (N=10), forward and forward+backward, FP32 (TF32 off) and TF32.  ratio = reference time /
our time, so > 1 means we are faster.  err = max |ours - reference| / max |reference| over the
output (and, for fwdbwd, over every gradient).

    python tools/bench_atrous.py [--device cpu|cuda] [--quick] [--json out.json]
        [--shapes conv5_3,fc6_largefov@321] [--modes fwd,fwdbwd] [--precision fp32,tf32]
        [--repeat R] [--budgets 16,32,64]

--budgets runs one subprocess per DEEPLAB_CAFFE_COL_BUDGET_MB value (the extension reads it once
per process) and merges their JSON.  Exit status 1 when a case failed or its error is too large;
missed speed targets only print "missed".
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zlib

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import deeplab_caffe  # noqa: E402
from deeplab_caffe.ops import conv2d_hole  # noqa: E402

# name: (C_in, C_out, kernel, pad, hole, spatial at 513, spatial at 321).  The /8 layers use 41 at
# 321, DeepLab fc6 included (its own nets give 39-42 there depending on pool4's pad).
LAYERS = {
    "conv1_2": (64, 64, 3, 1, 1, 513, 321),
    "conv2_2": (128, 128, 3, 1, 1, 257, 161),
    "conv3_3": (256, 256, 3, 1, 1, 129, 81),
    "conv4_3": (512, 512, 3, 1, 1, 65, 41),
    "conv5_3": (512, 512, 3, 2, 2, 65, 41),
    "fc6_largefov": (512, 1024, 3, 12, 12, 65, 41),
    "fc6_deeplab": (512, 4096, 4, 6, 4, 67, 41),
    "fc7": (1024, 1024, 1, 0, 1, 65, 41),
}
INPUTS = {513: 1, 321: 10}            # input size -> batch N
TOLERANCE = {"fp32": 1e-3, "tf32": 2e-2}  # on err (relative to the reference's max |value|)
TARGETS = [  # (name, precision, layers or None for all, minimum forward ratio)
    ("FP32 fwd >= 1.0x on every shape", "fp32", None, 1.0),
    ("FP32 fwd >= 1.5x on LargeFOV fc6", "fp32", ("fc6_largefov",), 1.5),
    ("TF32 fwd >= 0.8x on every shape", "tf32", None, 0.8),
]


def cases(quick, shape_filter):
    """[(layer, input, N, C_in, C_out, k, pad, hole, H)]; --quick shrinks channels by 8, spatial
    by 4 and N to 1/2 so the whole set runs in seconds on two CPU cores."""
    wanted = None if not shape_filter else [s.strip() for s in shape_filter.split(",") if s.strip()]
    out = []
    for inp, n in INPUTS.items():
        for name, (cin, cout, k, pad, hole, h513, h321) in LAYERS.items():
            if wanted is not None and name not in wanted and f"{name}@{inp}" not in wanted:
                continue
            h = h513 if inp == 513 else h321
            if quick:
                cin, cout, h, n_ = cin // 8, cout // 8, (h - 1) // 4 + 1, min(n, 2)
            else:
                n_ = n
            out.append((name, inp, n_, cin, cout, k, pad, hole, h))
    if wanted is not None:
        known = set(LAYERS) | {f"{n}@{i}" for n in LAYERS for i in INPUTS}
        bad = [s for s in wanted if s not in known]
        if bad:
            raise ValueError(f"--shapes: unknown {bad}; choose from {sorted(LAYERS)} "
                             f"(optionally @513 or @321)")
    return out


def set_precision(precision):
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def make_call(impl, mode, x, w, b, pad, hole):
    """A no-argument function running one forward (or forward+backward) of impl; returns the
    output and, for fwdbwd, the gradients (x, weight, bias)."""
    if impl == "ref":
        def conv(x_, w_, b_):
            return F.conv2d(x_, w_, b_, padding=pad, dilation=hole)
    else:
        def conv(x_, w_, b_):
            return conv2d_hole(x_, w_, b_, pad=pad, hole=hole)
    if mode == "fwd":
        def call():
            with torch.no_grad():
                return (conv(x, w, b),)
        return call
    xg, wg, bg = (t.detach().requires_grad_(True) for t in (x, w, b))
    gy = None

    def call():
        nonlocal gy
        y = conv(xg, wg, bg)
        if gy is None:  # a fixed random upstream gradient, shaped by the first call
            gy = torch.randn(y.shape, generator=torch.Generator(y.device).manual_seed(7),
                             device=y.device, dtype=y.dtype)
        return (y.detach(),) + torch.autograd.grad(y, (xg, wg, bg), gy)
    return call


def time_call(call, device, warmup, repeat):
    """(mean ms, min ms): CUDA events per repetition on the GPU, perf_counter on the CPU."""
    for _ in range(warmup):
        call()
    if device == "cuda":
        torch.cuda.synchronize()
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(repeat)]
        for start, end in ev:
            start.record()
            call()
            end.record()
        torch.cuda.synchronize()
        ms = [s.elapsed_time(e) for s, e in ev]
    else:
        ms = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            call()
            ms.append((time.perf_counter() - t0) * 1e3)
    return sum(ms) / len(ms), min(ms)


def peak_extra_mb(call):
    """Peak CUDA memory one call allocates above what is already held (MB): column buffers,
    cuDNN workspaces, outputs and gradients."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = call()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return peak / 2 ** 20


def rel_err(ours, ref):
    worst = 0.0
    for a, e in zip(ours, ref):
        scale = float(e.abs().max()) if e.numel() else 0.0
        diff = float((a.double() - e.double()).abs().max()) if e.numel() else 0.0
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst


def make_inputs(case, device):
    """x (N, C_in, H, H), weight (C_out, C_in, k, k) scaled to keep outputs O(1), bias (C_out,);
    drawn on the device (fast for the large shapes), seeded by the layer."""
    name, inp, n, cin, cout, k, pad, hole, h = case
    g = torch.Generator(device).manual_seed(zlib.crc32(f"{name}@{inp}".encode()))
    x = torch.randn(n, cin, h, h, generator=g, device=device)
    w = torch.randn(cout, cin, k, k, generator=g, device=device) / (cin * k * k) ** 0.5
    return x, w, torch.randn(cout, generator=g, device=device)


def run_case(case, inputs, mode, precision, device, warmup, repeat):
    name, inp, n, cin, cout, k, pad, hole, h = case
    x, w, b = inputs
    set_precision(precision)
    row = dict(layer=name, input=inp, n=n, c_in=cin, c_out=cout, kernel=k, pad=pad, hole=hole,
               h=h, w=h, mode=mode, precision=precision)
    try:
        ref, ours = (make_call(impl, mode, x, w, b, pad, hole) for impl in ("ref", "ours"))
        row["ref_ms"], row["ref_ms_min"] = time_call(ref, device, warmup, repeat)
        row["ours_ms"], row["ours_ms_min"] = time_call(ours, device, warmup, repeat)
        key = "ms" if device == "cuda" else "ms_min"  # CUDA: mean; CPU: best of R
        row["ratio"] = row[f"ref_{key}"] / row[f"ours_{key}"]
        row["err"] = rel_err(ours(), ref())
        row["ok"] = row["err"] <= TOLERANCE[precision]
        if device == "cuda":
            row["ref_peak_mb"] = peak_extra_mb(ref)
            row["ours_peak_mb"] = peak_extra_mb(ours)
    except Exception as exc:  # noqa: BLE001  (one failed case must not hide the others)
        row.update(ok=False, error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    finally:
        if device == "cuda":
            torch.cuda.empty_cache()
    return row


def environment(device):
    env = dict(build_info=deeplab_caffe.build_info(), torch=torch.__version__,
               python=platform.python_version(), device=device,
               date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               host=platform.node(), cpu_threads=torch.get_num_threads(),
               col_budget_mb=os.environ.get("DEEPLAB_CAFFE_COL_BUDGET_MB") or "default")
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, sm_count=p.multi_processor_count,
                   gpu_memory_gb=round(p.total_memory / 2 ** 30, 1),
                   cudnn=torch.backends.cudnn.version(), cuda_runtime=torch.version.cuda)
    return env


def evaluate_targets(rows):
    """One entry per speed target (forward only, as the issue states them)."""
    out = []
    for title, prec, layers, minimum in TARGETS:
        sel = [r for r in rows if r["mode"] == "fwd" and r["precision"] == prec
               and "ratio" in r and (layers is None or r["layer"] in layers)]
        if not sel:
            out.append(dict(target=title, status="not measured"))
            continue
        worst = min(sel, key=lambda r: r["ratio"])
        out.append(dict(target=title, status="met" if worst["ratio"] >= minimum else "missed",
                        worst_ratio=round(worst["ratio"], 3),
                        worst_case=f"{worst['layer']}@{worst['input']}",
                        budget_mb=worst.get("budget_mb")))
    return out


def print_header(device):
    ref = "cuDNN" if device == "cuda" else "torch"
    head = (f"{'layer':<13}{'input':>6}{'N':>4}  {'Cin>Cout k/pad/hole':<20}{'HxW':>8} {'mode':<7}"
            f"{'prec':<5}{ref + ' ms':>9}{'ours ms':>9}{'ratio':>7}{'err':>9}")
    if device == "cuda":  # peak memory one call allocates beyond its inputs
        head += f"{ref + ' MB':>9}{'ours MB':>9}"
    print(head)
    print("-" * len(head), flush=True)


def print_row(r, device):
    """One line as soon as a case is done, so a run stopped by a timeout still shows its rows."""
    geo = f"{r['c_in']}>{r['c_out']} {r['kernel']}/{r['pad']}/{r['hole']}"
    line = (f"{r['layer']:<13}{r['input']:>6}{r['n']:>4}  {geo:<20}"
            f"{str(r['h']) + 'x' + str(r['w']):>8} {r['mode']:<7}{r['precision']:<5}")
    if "error" in r:
        print(line + f"  FAILED: {r['error']}", flush=True)
        return
    key = "ms" if device == "cuda" else "ms_min"
    line += (f"{r['ref_' + key]:>9.3f}{r['ours_' + key]:>9.3f}{r['ratio']:>7.2f}"
             f"{r['err']:>9.1e}")
    if device == "cuda":
        line += f"{r['ref_peak_mb']:>9.1f}{r['ours_peak_mb']:>9.1f}"
    print(line + ("" if r["ok"] else "  ERROR TOO LARGE"), flush=True)


def print_targets(targets, device):
    suffix = "" if device == "cuda" else "  [CPU: for information only]"
    for t in targets:
        if t["status"] == "not measured":
            print(f"target {t['target']}: not measured")
        else:
            extra = f", budget {t['budget_mb']} MB" if t.get("budget_mb") else ""
            print(f"target {t['target']}: {t['status'].upper()} (worst {t['worst_ratio']:.2f}x "
                  f"at {t['worst_case']}{extra}){suffix}")


def run_budgets(args):
    """One child process per column budget; merges their rows (tagged budget_mb)."""
    merged, envs = [], {}
    for mb in [s.strip() for s in args.budgets.split(",") if s.strip()]:
        if not mb.isdigit() or int(mb) <= 0:
            raise ValueError(f"--budgets: each value must be a positive integer (MB), got {mb!r}")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "child.json")
            cmd = [sys.executable, os.path.abspath(__file__), "--device", args.device,
                   "--modes", args.modes, "--precision", args.precision, "--json", path]
            for flag, val in (("--repeat", args.repeat), ("--warmup", args.warmup),
                              ("--shapes", args.shapes), ("--threads", args.threads)):
                if val is not None:
                    cmd += [flag, str(val)]
            if args.quick:
                cmd.append("--quick")
            print(f"==== DEEPLAB_CAFFE_COL_BUDGET_MB={mb} ====", flush=True)
            subprocess.run(cmd, env=dict(os.environ, DEEPLAB_CAFFE_COL_BUDGET_MB=mb))
            if not os.path.exists(path):
                merged.append(dict(budget_mb=int(mb), ok=False, error="child wrote no JSON",
                                   layer="*", input=0, mode="*", precision="*"))
                continue
            with open(path) as f:
                child = json.load(f)
        envs[mb] = child["env"]
        for r in child["results"]:
            r["budget_mb"] = int(mb)
            merged.append(r)
    return merged, envs


def print_budget_matrix(rows):
    budgets = sorted({r["budget_mb"] for r in rows})
    keys = []
    for r in rows:
        k = (r["layer"], r["input"], r["mode"], r["precision"])
        if k not in keys and "ratio" in r:
            keys.append(k)
    print("\nratio by column budget (MB): " + " ".join(f"{b:>7}" for b in budgets))
    for k in keys:
        vals = {r["budget_mb"]: r["ratio"] for r in rows
                if (r["layer"], r["input"], r["mode"], r["precision"]) == k and "ratio" in r}
        cells = " ".join(f"{vals[b]:>7.2f}" if b in vals else f"{'-':>7}" for b in budgets)
        print(f"  {k[0]:<13}{k[1]:>4} {k[2]:<7}{k[3]:<5}" + " " * 2 + cells)


def write_json(path, env, config, rows, targets):
    """targets None marks a partial file (the run is still going or was stopped)."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(dict(env=env, config=config, complete=targets is not None, results=rows,
                       targets=targets or []), f, indent=1)
    os.replace(path + ".tmp", path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"],
                    default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true",
                    help="CPU smoke: channels /8, spatial /4, N <= 2")
    ap.add_argument("--shapes", help="comma list of layers, e.g. conv5_3,fc6_largefov@321")
    ap.add_argument("--modes", default="fwd,fwdbwd", help="fwd and/or fwdbwd")
    ap.add_argument("--precision", default=None,
                    help="fp32 and/or tf32 (default fp32,tf32 on CUDA, fp32 on the CPU)")
    ap.add_argument("--repeat", type=int, default=None, help="timed repetitions (20 CUDA, 3 CPU)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls first (5 CUDA, 1 CPU)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (1 gives steadier CPU times)")
    ap.add_argument("--budgets", help="sweep DEEPLAB_CAFFE_COL_BUDGET_MB, e.g. 16,32,64")
    ap.add_argument("--json", help="write environment and results here")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA GPU is visible to torch")
    if args.precision is None:
        args.precision = "fp32,tf32" if args.device == "cuda" else "fp32"
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    for val, allowed, flag in ((modes, ("fwd", "fwdbwd"), "--modes"),
                               (precisions, ("fp32", "tf32"), "--precision")):
        bad = [v for v in val if v not in allowed]
        if bad or not val:
            ap.error(f"{flag}: got {bad or val}, choose from {allowed}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu" and not args.quick:
        print("note: the full shapes take tens of minutes on a CPU; --quick is the CPU smoke run")
    if args.device == "cpu" and "tf32" in precisions:
        print("note: TF32 exists only on CUDA; skipping --precision tf32 on the CPU")
        precisions = [p for p in precisions if p != "tf32"] or ["fp32"]
    repeat = args.repeat or (20 if args.device == "cuda" else 3)
    warmup = args.warmup if args.warmup is not None else (5 if args.device == "cuda" else 1)
    try:
        selected = cases(args.quick, args.shapes)
    except ValueError as exc:
        ap.error(str(exc))

    config = dict(device=args.device, quick=args.quick, modes=modes, precisions=precisions,
                  repeat=repeat, warmup=warmup, shapes=args.shapes, budgets=args.budgets,
                  tolerance=TOLERANCE, timing="mean of CUDA events" if args.device == "cuda"
                  else "best of perf_counter")
    t0 = time.perf_counter()
    if args.budgets:
        try:
            rows, envs = run_budgets(args)
        except ValueError as exc:
            ap.error(str(exc))
        env = dict(environment(args.device), per_budget=envs)
        print_budget_matrix([r for r in rows if "ratio" in r])
    else:
        if args.device == "cuda":
            torch.backends.cudnn.benchmark = True
        env = environment(args.device)
        print(f"deeplab_caffe {env['build_info']}  torch {env['torch']}  device "
              f"{env.get('gpu', 'cpu (%d threads)' % env['cpu_threads'])}  column budget "
              f"{env['col_budget_mb']} MB  repeat {repeat}, warm-up {warmup}", flush=True)
        print_header(args.device)
        rows = []
        for c in selected:
            inputs = make_inputs(c, args.device)
            for p in precisions:
                for m in modes:
                    rows.append(run_case(c, inputs, m, p, args.device, warmup, repeat))
                    print_row(rows[-1], args.device)
                    # Rewritten after every case: a run cut short by a timeout keeps its results.
                    write_json(args.json, env, config, rows, None)
            del inputs
        if args.device != "cuda":
            print("(CPU: reference is PyTorch's CPU convolution, times are best of R; the speed "
                  "targets are for cuDNN on an H100/H200 and do not apply here)")
    targets = []
    for mb in sorted({r.get("budget_mb") for r in rows}, key=lambda v: v or 0):
        targets += evaluate_targets([r for r in rows if r.get("budget_mb") == mb])
    print_targets(targets, args.device)
    config["elapsed_s"] = round(time.perf_counter() - t0, 2)
    failed = [r for r in rows if not r.get("ok")]
    print(f"{len(rows)} cases in {config['elapsed_s']:.1f} s; {len(failed)} failed or outside "
          f"tolerance")
    write_json(args.json, env, config, rows, targets)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
