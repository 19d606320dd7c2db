"""What the atrous benchmark prints and writes: the environment, one line per case, the speed
targets, the column-budget matrix and the JSON file."""
import datetime
import json
import os
import platform

import torch

from .. import build_info

TARGETS = [  # (name, precision, layers or None for all, minimum forward ratio)
    ("FP32 fwd >= 1.0x on every shape", "fp32", None, 1.0),
    ("FP32 fwd >= 1.5x on LargeFOV fc6", "fp32", ("fc6_largefov",), 1.5),
    ("TF32 fwd >= 0.8x on every shape", "tf32", None, 0.8),
]

def environment(device):
    env = dict(build_info=build_info(), torch=torch.__version__,
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
