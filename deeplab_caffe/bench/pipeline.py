"""The whole CPU pipeline on a quiet and on a busy machine: ``bench_net.py --pipeline --load K``.

Each stage is one of our commands run as a user runs it, in its own process (so the entry
point's thread settings apply, deeplab_caffe/runtime_env.py): train (``tools/train_net.py``, 60
iterations of prototxt/demo), test (``tools/test_net.py`` with the dense CRF on the val list),
segment (``tools/segment.py --crf`` on val images) and the demo (``tools/demo.py --quick``: its
own stages' wall-clock seconds).  Every round runs all stages quiet (no added load) and with K
busy processes (deeplab_caffe/bench/load.py), in alternating order; the JSON has each stage's
median, min and max wall-clock and CPU seconds per condition and the loaded / quiet ratio of
the medians (issue 15's target: <= 2.5 with K = 2 on 2 cores).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from ..cli import demo
from ..cli.flags import checkout_path
from ..runtime_env import free_cores, sample_running, usable_cores
from .load import busy_processes, load_average

STAGES = ("train", "test", "segment", "demo")
TRAIN_ITERATIONS = 60
NUM_TRAIN, NUM_VAL, SEGMENT_IMAGES = 100, 8, 4


def tool(name, *args):
    return [sys.executable, checkout_path("tools", f"{name}.py"), *args]


def prepare(root):
    """The demo's synthetic set (its quick size) under ROOT/data, lists under ROOT/list."""
    args = demo.parse_args(["--quick", "--num-train", str(NUM_TRAIN), "--num-val", str(NUM_VAL)])
    data, _ = demo.make_data(root, args)
    return data


def commands(root, data):
    """stage -> the command line(s) it times; test and segment use train's snapshot."""
    proto = checkout_path("prototxt", "demo")
    defines = [f"EXP={root}", f"DATA_ROOT={data}", "TRAIN_SET=train_aug", "TEST_SET=val",
               f"NUM_LABELS={demo.NUM_LABELS}"]
    weights = os.path.join(root, "model", "demo", f"train_iter_{TRAIN_ITERATIONS}.caffemodel")
    train = tool("train_net", "--solver", os.path.join(proto, "solver.prototxt"), "--gpu", "-1",
                 "--iterations", str(TRAIN_ITERATIONS))
    for d in defines:
        train += ["--define", d]
    test = tool("test_net", "--model", os.path.join(proto, "test.prototxt"), "--weights",
                weights, "--num-classes", str(demo.NUM_LABELS), "--crf", "--out", os.path.join(root, "test"),
                "--quiet")
    for d in defines:
        test += ["--define", d]
    with open(os.path.join(root, "list", "val.txt")) as f:
        images = [data + line.split()[0] for line in f if line.strip()][:SEGMENT_IMAGES]
    segment = tool("segment", *images, "--model", os.path.join(proto, "test.prototxt"),
                   "--weights", weights, "--define", f"NUM_LABELS={demo.NUM_LABELS}", "--crf", "--quiet",
                   "--out", os.path.join(root, "segment"))
    quick_demo = tool("demo", "--quick", "--out", os.path.join(root, "demo"))
    return {"train": train, "test": test, "segment": segment, "demo": quick_demo}


def run_stage(cmd, log):
    """(wall s, CPU s of the child) of one command; its output goes to ``log``."""
    before = os.times()
    t = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=checkout_path()).returncode
    wall = time.perf_counter() - t
    after = os.times()
    if rc:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit status {rc}); see {log}")
    cpu = (after.children_user + after.children_system
           - before.children_user - before.children_system)
    return wall, cpu


def one_round(cmds, root, stages, load):
    """{name: (wall, cpu)} for each stage (the demo's own stages as demo.<stage>) under
    ``load`` busy processes, with the machine's state when it started."""
    out = {}
    with busy_processes(load):
        state = {"load_average": load_average(),
                 "threads_expected": free_cores(usable_cores(), sample_running())}
        for stage in stages:
            out[stage] = run_stage(cmds[stage], os.path.join(root, f"{stage}.log"))
            if stage == "demo":
                with open(os.path.join(root, "demo", "results.json")) as f:
                    for name, s in json.load(f)["seconds"].items():
                        out[f"demo.{name}"] = (s["wall"], s["cpu"])
    return out, state


def summary(runs):
    walls = [w for w, _ in runs]
    return {"median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
            "cpu_median_s": statistics.median(c for _, c in runs), "runs_s": walls}


def bench_pipeline(load, rounds, stages, keep=None):
    """Times ``stages`` quiet and under ``load`` busy processes over ``rounds`` alternating
    rounds (after one untimed warm-up round, quiet, that also writes the snapshot)."""
    if load < 1 or rounds < 1:
        raise ValueError(f"--pipeline needs --load >= 1 and --rounds >= 1, got {load}, {rounds}")
    root = keep or tempfile.mkdtemp(prefix="bench_pipeline_")
    data = prepare(root)
    cmds = commands(root, data)
    need = ["train"] + [s for s in stages if s != "train"]
    one_round(cmds, root, need, 0)
    times = {0: {}, load: {}}
    states = []
    for r in range(rounds):
        for cond in ((0, load) if r % 2 == 0 else (load, 0)):
            res, state = one_round(cmds, root, stages, cond)
            states.append(dict(state, round=r, busy=cond))
            for name, v in res.items():
                times[cond].setdefault(name, []).append(v)
            print(f"round {r} busy {cond}: " + ", ".join(f"{k} {w:.1f}s" for k, (w, _) in
                                                        res.items()), flush=True)
    results = {}
    for name in times[0]:
        q, b = summary(times[0][name]), summary(times[load][name])
        results[name] = {"quiet": q, f"load{load}": b, "ratio": b["median_s"] / q["median_s"]}
    if keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return {"load": load, "rounds": rounds, "cores": usable_cores(), "states": states,
            "results": results}


def print_table(info):
    load = info["load"]
    print(f"{'stage':<16} {'quiet s':>9} {f'load {load} s':>9} {'ratio':>6}   (medians of "
          f"{info['rounds']}; CPU s quiet / load)")
    for name, r in info["results"].items():
        q, b = r["quiet"], r[f"load{load}"]
        print(f"{name:<16} {q['median_s']:9.2f} {b['median_s']:9.2f} {r['ratio']:6.2f}   "
              f"{q['cpu_median_s']:.1f} / {b['cpu_median_s']:.1f}")
