#!/usr/bin/env python3
"""The whole DeepLab pipeline in miniature, on a synthetic VOC-style set, with no downloads.

    python tools/demo.py [--out demo_out] [--gpu -1|0] [--quick] [--seed 0] [--iterations N]

1. writes the synthetic set (deeplab_caffe.data.synthetic: 300 train and 40 val images of
   96..128 px, background and 5 object classes told apart by colour and texture) under
   OUT/data, or keeps it when it was made with the same parameters;
2. trains prototxt/demo (DeepLab-LargeFOV's shape at a CPU size, msra fillers, poly rate) from
   scratch with ``deeplab-caffe train``: the solver's test net scores val every 100 iterations,
   progress and test outputs go to the console and OUT/train.log (glog's file), plotted by
   tools/plot_log.py to OUT/train_log.png (train and test curves); the snapshot is
   OUT/model/demo/train_iter_N.caffemodel;
3. tests it on val with and without the dense CRF with tools/test_net.py (the trimap bands
   too): OUT/test/results.json, OUT/test/labels[_crf]/;
4. writes OUT/results.json and OUT/results.md (the mIoU table), OUT/trimap.png (mean IoU
   against the trimap band width, tools/plot_trimap.py) and OUT/examples.png (input, ground
   truth, net, net + CRF for a few val images, VOC colours).
Each stage prints its wall-clock and CPU seconds (on a busy machine the CPU time is what a quiet
one would take).

--quick is a smaller run for the tests (demo.QUICK).  The CRF settings are DEMO_CRF (the same
as prototxt/demo/test_crf.prototxt); --bi-w/--bi-xy-std/--bi-rgb-std change them.
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image

from ..data.synthetic import DEMO_LOOK, make_synthetic_voc
from ..data.voc import load_label
from ..errors import CaffeError
from ..eval.palette import colourize, panel
from . import caffe, plot_log, plot_trimap, test_net
from .flags import checkout_path

PROTO = checkout_path("prototxt", "demo")
# Background and five object classes: enough for the CRF to have boundaries between objects
# to clean up, few enough for a net trained from scratch for a few CPU minutes to learn them all.
NUM_LABELS = 6
# (num_train, num_val, iterations): the full demo and --quick.  800 iterations of batch 10 (the
# solver's base_lr 0.03; its comment says why) take about 45 s of CPU; the net then scores
# 89..94% val mean IoU on seeds 0-4 (README).  --quick's 150 iterations leave the all-background
# answer and let the CRF gain near boundaries on every seed tried (0-4).
FULL = {"num_train": 300, "num_val": 40, "iterations": 800}
QUICK = {"num_train": 100, "num_val": 8, "iterations": 150}
SIZE = ((96, 128), (96, 128))
# DeepLab-LargeFOV's CRF kernels (w2 = sigma_gamma = 3, 10 mean-field iterations) with the bilateral
# one cross-validated as the paper did: tools/crf_grid_search.py with a seed-0 demo net on a
# held-out synthetic split (seed 1000, 40 images, never trained or reported on), grid bi_w
# {3,5,10} x bi_xy_std {10,20,30,50} x bi_rgb_std {5,10,15,20}: best 10/50/20, mIoU 89.5 ->
# 97.6%; widening it (bi_w to 20, bi_xy_std 80, bi_rgb_std 30) gained at most 0.1 point.
DEMO_CRF = {"bi_w": 10.0, "bi_xy_std": 50.0, "bi_rgb_std": 20.0, "pos_w": 3.0, "pos_xy_std": 3.0,
            "max_iter": 10}
REPORT_WIDTHS = (1, 2, 3, 5, 10, 20)
TRIMAP_WIDTHS = "1-40"
EXAMPLES = 4


def _call(tool, argv):
    """Runs a tool's main(argv) in this process, printing the command line it stands for."""
    name = tool.__name__.rsplit(".", 1)[-1]
    print(f"\n== tools/{name}.py " + " ".join(argv), flush=True)
    rc = tool.main(argv)
    if rc:
        raise CaffeError(f"tools/{name}.py failed (exit status {rc})")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    ap.add_argument("--gpu", type=int, default=-1, help="GPU index, -1 = CPU (default)")
    ap.add_argument("--quick", action="store_true", help="a much smaller run (tests)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic set (default 0)")
    ap.add_argument("--iterations", type=int, help="training iterations (default: "
                    f"{FULL['iterations']}, {QUICK['iterations']} with --quick)")
    ap.add_argument("--num-train", type=int, help="synthetic training images")
    ap.add_argument("--num-val", type=int, help="synthetic val images")
    # The numbers do not depend on it (prototxt/demo's Caffe engine under MKL's strict mode):
    # by default the cores the machine's load leaves free (deeplab_caffe/runtime_env.py).
    ap.add_argument("--threads", type=int, help="CPU threads (default: the free cores; "
                    "OMP_NUM_THREADS where set)")
    ap.add_argument("--bi-w", type=float, default=DEMO_CRF["bi_w"])
    ap.add_argument("--bi-xy-std", type=float, default=DEMO_CRF["bi_xy_std"])
    ap.add_argument("--bi-rgb-std", type=float, default=DEMO_CRF["bi_rgb_std"])
    ap.add_argument("--crfrnn", action="store_true",
                    help="then fine-tune the net end to end with CRF-RNN's MultiStageMeanfield "
                    "layer on top and score it too (demo_crfrnn.py; about a minute of CPU)")
    a = ap.parse_args(argv)
    base = QUICK if a.quick else FULL
    a.num_train = base["num_train"] if a.num_train is None else a.num_train
    a.num_val = base["num_val"] if a.num_val is None else a.num_val
    a.iterations = base["iterations"] if a.iterations is None else a.iterations
    for flag in ("num_train", "num_val", "iterations", "threads"):
        if getattr(a, flag) is not None and getattr(a, flag) < 1:
            ap.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(a, flag)}")
    a.crf = dict(DEMO_CRF, bi_w=a.bi_w, bi_xy_std=a.bi_xy_std, bi_rgb_std=a.bi_rgb_std)
    return a


def make_data(out, args):
    """The synthetic set under OUT/data (kept when its parameters match); its lists are copied
    to OUT/list, as DeepLab's experiment folder (${EXP}) holds list/ next to model/."""
    data = os.path.join(out, "data")
    params = {"num_train": args.num_train, "num_val": args.num_val, "size": SIZE,
              "num_classes": NUM_LABELS, "seed": args.seed, "look": vars(DEMO_LOOK)}
    stamp = os.path.join(data, "demo_params.json")
    have = None
    if os.path.exists(stamp):
        with open(stamp) as f:
            have = json.load(f)
    if have == json.loads(json.dumps(params)):
        print(f"== keeping the synthetic set in {data} (same parameters)")
    else:
        shutil.rmtree(data, ignore_errors=True)
        print(f"== writing the synthetic set to {data}: {args.num_train} train, "
              f"{args.num_val} val images, seed {args.seed}", flush=True)
        make_synthetic_voc(data, args.num_train, args.num_val, SIZE, NUM_LABELS, args.seed,
                           look=DEMO_LOOK)
        with open(stamp, "w") as f:
            json.dump(params, f, indent=1)
    shutil.copytree(os.path.join(data, "list"), os.path.join(out, "list"), dirs_exist_ok=True)
    return data, params


def train(out, data, args):
    """``deeplab-caffe train`` on the demo solver, as a user runs it (its glog file, through
    $GLOG_log_dir, becomes OUT/train.log); returns the final snapshot's path."""
    model_dir = os.path.join(out, "model")
    shutil.rmtree(model_dir, ignore_errors=True)
    log_dir = os.path.join(out, "log")
    shutil.rmtree(log_dir, ignore_errors=True)
    os.makedirs(log_dir)
    argv = ["train", "-solver", os.path.join(PROTO, "solver.prototxt"), "-gpu", str(args.gpu),
            "-iterations", str(args.iterations)]
    for define in (f"EXP={out}", f"DATA_ROOT={data}", "TRAIN_SET=train_aug", "TEST_SET=val",
                   f"NUM_LABELS={NUM_LABELS}"):
        argv += ["-define", define]
    print("\n== deeplab-caffe " + " ".join(argv), flush=True)
    saved = os.environ.get("GLOG_log_dir")
    os.environ["GLOG_log_dir"] = log_dir
    try:
        rc = caffe.main(argv)
    finally:
        if saved is None:
            del os.environ["GLOG_log_dir"]
        else:
            os.environ["GLOG_log_dir"] = saved
    if rc:
        raise CaffeError(f"deeplab-caffe train failed (exit status {rc}); see {log_dir}")
    log = os.path.join(out, "train.log")
    shutil.copyfile(os.path.join(log_dir, f"{caffe.PROGRAM}.INFO"), log)
    weights = os.path.join(model_dir, "demo", f"train_iter_{args.iterations}.caffemodel")
    if not os.path.exists(weights):
        raise CaffeError(f"training finished without the snapshot {weights}")
    _call(plot_log, [log, "--out", os.path.join(out, "train_log.png")])
    return weights


def test(out, data, weights, args):
    test_dir = os.path.join(out, "test")
    shutil.rmtree(test_dir, ignore_errors=True)
    crf = args.crf
    _call(test_net, ["--model", os.path.join(PROTO, "test.prototxt"), "--weights", weights,
                       "--gpu", str(args.gpu), "--define", f"EXP={out}",
                       "--define", f"DATA_ROOT={data}", "--define", "TEST_SET=val",
                       "--define", f"NUM_LABELS={NUM_LABELS}",
                       "--num-classes", str(NUM_LABELS), "--crf",
                       "--bi-w", str(crf["bi_w"]), "--bi-xy-std", str(crf["bi_xy_std"]),
                       "--bi-rgb-std", str(crf["bi_rgb_std"]), "--pos-w", str(crf["pos_w"]),
                       "--pos-xy-std", str(crf["pos_xy_std"]), "--crf-iter",
                       str(crf["max_iter"]), "--trimap", TRIMAP_WIDTHS, "--save-labels",
                       "--out", test_dir, "--quiet"])
    with open(os.path.join(test_dir, "results.json")) as f:
        res = json.load(f)
    _call(plot_trimap, [os.path.join(test_dir, "results.json"), "--out",
                          os.path.join(out, "trimap.png"),
                          "--title", "demo: mean IoU within the trimap band (val)"])
    return test_dir, res


def examples(out, data, test_dir, count=EXAMPLES):
    """OUT/examples.png: one row per val image: input | ground truth | net | net + CRF."""
    with open(os.path.join(data, "list", "val.txt")) as f:
        entries = [line.split() for line in f if line.strip()][:count]
    rows = []
    for img_rel, lab_rel in entries:
        image_id = os.path.splitext(os.path.basename(img_rel))[0]
        net = load_label(os.path.join(test_dir, "labels", image_id + ".png"))
        crf = load_label(os.path.join(test_dir, "labels_crf", image_id + ".png"))
        h, w = net.shape
        gt = load_label(data + lab_rel)
        rgb = np.asarray(Image.open(data + img_rel).convert("RGB"))
        # DeepLab's TEST crop keeps a centred (or the whole, top-left) region: offset (H - h)//2
        y0, x0 = (gt.shape[0] - h) // 2, (gt.shape[1] - w) // 2
        rows.append(panel([rgb[y0:y0 + h, x0:x0 + w], colourize(gt[y0:y0 + h, x0:x0 + w]),
                           colourize(net), colourize(crf)],
                          [image_id, "ground truth", "net", "net + CRF"]))
    width = max(r.width for r in rows)
    canvas = Image.new("RGB", (width, sum(r.height + 4 for r in rows)), (255, 255, 255))
    y = 0
    for r in rows:
        canvas.paste(r, (0, y))
        y += r.height + 4
    path = os.path.join(out, "examples.png")
    canvas.save(path)
    return path


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.2f}"


def _diff(a, b):
    return None if a is None or b is None else a - b


def summarize(out, args, params, res, seconds, weights):
    tri = res["trimap"]
    band = {}
    for key in ("net", "crf"):
        band[key] = {str(w): tri[key][tri["widths"].index(w)] for w in REPORT_WIDTHS
                     if w in tri["widths"]}
    summary = {
        "seed": args.seed, "quick": args.quick, "iterations": args.iterations,
        "threads": args.threads,
        "data": params, "weights": os.path.relpath(weights, out), "crf_params": args.crf,
        "val_images": res["images"],
        "net": {k: res["net"][k] for k in ("pixel_acc", "mean_acc", "miou")},
        "crf": {k: res["crf"][k] for k in ("pixel_acc", "mean_acc", "miou")},
        "trimap_miou": band,
        # CRF minus net, in IoU (0..1): the demo's point is a positive gain near boundaries
        "crf_gain": {"miou": _diff(res["crf"]["miou"], res["net"]["miou"]),
                     "trimap_miou": {w: _diff(band["crf"][w], band["net"][w])
                                     for w in band["net"]}},
        "trimap": {"widths": tri["widths"], "net": tri["net"], "crf": tri["crf"]},
        "seconds": seconds,
        "files": {k: k for k in ("results.md", "trimap.png", "examples.png", "train.log",
                                 "train_log.png", "test/results.json")},
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    c = args.crf
    lines = [
        "# DeepLab demo results (synthetic VOC-style set)", "",
        f"Data: {params['num_train']} train / {params['num_val']} val images of "
        f"{SIZE[0][0]}..{SIZE[0][1]} px, {NUM_LABELS} classes, seed {args.seed}. "
        f"Net: prototxt/demo (LargeFOV's shape, one conv per stage), {args.iterations} "
        f"iterations from scratch, {args.threads} CPU thread(s).", "",
        f"CRF: bi_w {c['bi_w']:g}, bi_xy_std {c['bi_xy_std']:g}, bi_rgb_std "
        f"{c['bi_rgb_std']:g}, pos_w {c['pos_w']:g}, pos_xy_std {c['pos_xy_std']:g}, "
        f"{c['max_iter']} iterations.", "",
        "| val (%) | pixel acc | mean acc | mean IoU | "
        + " | ".join(f"trimap {w} px" for w in REPORT_WIDTHS) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(REPORT_WIDTHS)]
    for key, name in (("net", "DeepLab (net)"), ("crf", "DeepLab-CRF (net + CRF)")):
        s = summary[key]
        lines.append(f"| {name} | {_pct(s['pixel_acc'])} | {_pct(s['mean_acc'])} | "
                     f"{_pct(s['miou'])} | "
                     + " | ".join(_pct(band[key].get(str(w))) for w in REPORT_WIDTHS) + " |")
    g, net, crf = summary["crf_gain"], summary["net"], summary["crf"]
    lines.append(f"| CRF gain (points) | {_pct(_diff(crf['pixel_acc'], net['pixel_acc']))} | "
                 f"{_pct(_diff(crf['mean_acc'], net['mean_acc']))} | {_pct(g['miou'])} | "
                 + " | ".join(_pct(g["trimap_miou"].get(str(w))) for w in REPORT_WIDTHS) + " |")
    lines += ["", "trimap w px: mean IoU over the pixels within w px of the void band around "
              "object boundaries (the paper's Figure 5).", "",
              "Files: trimap.png (mean IoU against the band width), examples.png (input | "
              "ground truth | net | net + CRF), train.log and train_log.png (training), "
              "test/results.json (per-class IoU), model/demo/ (snapshots).", "",
              "Time (s, wall / CPU): " + ", ".join(f"{k} {v['wall']:.1f} / {v['cpu']:.1f}"
                                          for k, v in seconds.items()), ""]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines))
    return summary


class Stages:
    """Wall-clock and CPU (process) seconds of each stage, printed as each one ends: on a busy
    machine the CPU time is the figure that tells what a quiet one would take."""

    def __init__(self):
        self.seconds = {}
        self._start = (time.perf_counter(), time.process_time())

    def run(self, name, fn, *args):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn(*args)
        self.seconds[name] = {"wall": time.perf_counter() - wall,
                              "cpu": time.process_time() - cpu}
        print(f"== stage {name}: {self.seconds[name]['wall']:.1f} s wall, "
              f"{self.seconds[name]['cpu']:.1f} s CPU", flush=True)
        return result

    def total(self):
        self.seconds["total"] = {"wall": time.perf_counter() - self._start[0],
                                 "cpu": time.process_time() - self._start[1]}
        return self.seconds


def main(argv=None):
    args = parse_args(argv)
    import torch
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    stages = Stages()
    try:
        data, params = stages.run("data", make_data, out, args)
        weights = stages.run("train", train, out, data, args)
        test_dir, res = stages.run("test", test, out, data, weights, args)
        stages.run("examples", examples, out, data, test_dir)
        if args.crfrnn:
            from . import demo_crfrnn
            crfrnn = stages.run("crfrnn", demo_crfrnn.stage, out, PROTO, data, weights, args,
                                res, NUM_LABELS)
        seconds = stages.total()
        s = summarize(out, args, params, res, seconds, weights)
        if args.crfrnn:
            demo_crfrnn.add_to_results(out, crfrnn, seconds["crfrnn"])
    except (CaffeError, OSError) as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 1
    b = s["trimap_miou"]
    print(f"\n== demo done in {seconds['total']['wall']:.0f} s ({seconds['total']['cpu']:.0f} s "
          f"CPU); everything is in {out}/")
    print(f"   val mean IoU: net {_pct(s['net']['miou'])}%, net + CRF {_pct(s['crf']['miou'])}%;"
          f" pixel acc {_pct(s['net']['pixel_acc'])}% -> {_pct(s['crf']['pixel_acc'])}%")
    for w in (1, 3, 5):
        if str(w) in b["net"]:
            print(f"   trimap {w} px mean IoU: net {_pct(b['net'][str(w)])}%, "
                  f"net + CRF {_pct(b['crf'][str(w)])}% "
                  f"(CRF gain {_pct(s['crf_gain']['trimap_miou'][str(w)])} points)")
    if args.crfrnn:
        print(demo_crfrnn.summary_line(crfrnn))
    for name, what in (("results.md", "the table"), ("results.json", "the numbers"),
                       ("trimap.png", "mean IoU against the trimap band width"),
                       ("examples.png", "input | ground truth | net | net + CRF"),
                       ("train_log.png", "the training curves (train.log)"),
                       ("model/demo", "the snapshots")):
        print(f"   {os.path.join(out, name)}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
