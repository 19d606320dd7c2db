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
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

from .atrous_cases import TOLERANCE, cases, make_inputs, run_case
from .atrous_report import (environment, evaluate_targets, print_budget_matrix, print_header,
                            print_row, print_targets, write_json)


def run_budgets(args):
    """One child process per column budget; merges their rows (tagged budget_mb)."""
    merged, envs = [], {}
    for mb in args.budget_list:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "child.json")
            cmd = [sys.executable, "-m", __spec__.name, "--device", args.device,
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


def parse_args(argv):
    """The flags, checked, with the device's defaults filled in; modes and precisions as lists."""
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
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.precision_list = [p.strip() for p in args.precision.split(",") if p.strip()]
    for val, allowed, flag in ((args.mode_list, ("fwd", "fwdbwd"), "--modes"),
                               (args.precision_list, ("fp32", "tf32"), "--precision")):
        bad = [v for v in val if v not in allowed]
        if bad or not val:
            ap.error(f"{flag}: got {bad or val}, choose from {allowed}")
    if args.device == "cpu" and "tf32" in args.precision_list:
        print("note: TF32 exists only on CUDA; skipping --precision tf32 on the CPU")
        args.precision_list = [p for p in args.precision_list if p != "tf32"] or ["fp32"]
    args.repeat = args.repeat or (20 if args.device == "cuda" else 3)
    if args.warmup is None:
        args.warmup = 5 if args.device == "cuda" else 1
    try:
        args.cases = cases(args.quick, args.shapes)
        if args.budgets:
            args.budget_list = budget_list(args.budgets)
    except ValueError as exc:
        ap.error(str(exc))
    return args


def budget_list(text):
    """--budgets "16,32" -> ["16", "32"]: positive integers (MB)."""
    out = [s.strip() for s in text.split(",") if s.strip()]
    for mb in out:
        if not mb.isdigit() or int(mb) <= 0:
            raise ValueError(f"--budgets: each value must be a positive integer (MB), got {mb!r}")
    return out


def run_here(args, config):
    """Every selected case in this process: (environment, rows), a line and the JSON file
    rewritten after each case."""
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    env = environment(args.device)
    print(f"deeplab_caffe {env['build_info']}  torch {env['torch']}  device "
          f"{env.get('gpu', 'cpu (%d threads)' % env['cpu_threads'])}  column budget "
          f"{env['col_budget_mb']} MB  repeat {args.repeat}, warm-up {args.warmup}", flush=True)
    print_header(args.device)
    rows = []
    for c in args.cases:
        inputs = make_inputs(c, args.device)
        for p in args.precision_list:
            for m in args.mode_list:
                rows.append(run_case(c, inputs, m, p, args.device, args.warmup, args.repeat))
                print_row(rows[-1], args.device)
                # Rewritten after every case: a run cut short by a timeout keeps its results.
                write_json(args.json, env, config, rows, None)
        del inputs
    if args.device != "cuda":
        print("(CPU: reference is PyTorch's CPU convolution, times are best of R; the speed "
              "targets are for cuDNN on an H100/H200 and do not apply here)")
    return env, rows


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu" and not args.quick:
        print("note: the full shapes take tens of minutes on a CPU; --quick is the CPU smoke run")
    config = dict(device=args.device, quick=args.quick, modes=args.mode_list,
                  precisions=args.precision_list, repeat=args.repeat, warmup=args.warmup,
                  shapes=args.shapes, budgets=args.budgets, tolerance=TOLERANCE,
                  timing="mean of CUDA events" if args.device == "cuda"
                  else "best of perf_counter")
    t0 = time.perf_counter()
    if args.budgets:
        rows, envs = run_budgets(args)
        env = dict(environment(args.device), per_budget=envs)
        print_budget_matrix([r for r in rows if "ratio" in r])
    else:
        env, rows = run_here(args, config)
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
