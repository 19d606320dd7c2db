"""Cross-validate the dense CRF's bilateral kernel (bi_w, bi_xy_std, bi_rgb_std) as the paper did.

    python tools/crf_grid_search.py --model prototxt/DeepLab-LargeFOV/test.prototxt --weights W \\
        --define ... --num-images 100 --out crf_search [--gpu 0] [--workers 16]

The net runs once over the first --num-images images of its list; their scores, 8-bit images and
labels are cached (OUT/cache/<id>.npz, scores as float16; reused while the model, weights and
list agree).  Then every grid point runs the CRF (pos_w = pos_xy_std = 3, 10 iterations) on all
the cached images: the coarse grid W {5,10} x XY 50:100:10 x RGB 3:10 (or --grid "W;XY;RGB",
each "a,b" or "start:stop[:step]"), then a fine grid around the best (--fine-step, --fine-radius;
--fine-radius 0 skips it).  --quick: 10 images, grid "5,10;50,100;3,10", no fine stage.
Writes OUT/crf_grid.csv, OUT/crf_grid.json (rows, best, the net's mIoU without CRF) and heat
maps OUT/crf_grid.png (coarse) and OUT/crf_grid_fine.png.
"""
import argparse
import csv
import json
import os
import sys

import numpy as np

from ..errors import CaffeError
from ..eval.crf_search import (COARSE_GRID, FINE_STEP, QUICK_GRID, Sample, coarse_to_fine,
                               parse_grid, parse_values)
from ..eval.plots import heatmap
from ..log import RateProgress
from .flags import add_net_flags, device_from_gpu, parse_defines


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_net_flags(ap, "test.prototxt (without DENSE_CRF)", ".caffemodel or .pt")
    ap.add_argument("--num-classes", type=int, default=21)
    ap.add_argument("--num-images", type=int, default=100,
                    help="held-out images, from the top of the list (default 100)")
    ap.add_argument("--out", default="crf_search", help="output folder (default crf_search)")
    ap.add_argument("--cache", help="score cache folder (default OUT/cache)")
    ap.add_argument("--grid", help="coarse grid 'W;XY;RGB' (default '5,10;50:100:10;3:10')")
    ap.add_argument("--fine-step", default=",".join(f"{v:g}" for v in FINE_STEP),
                    help="fine steps for W,XY,RGB (default 1,5,0.5)")
    ap.add_argument("--fine-radius", type=int, default=1,
                    help="fine grid: best +- k steps, k <= radius (default 1; 0 = no fine)")
    ap.add_argument("--quick", action="store_true", help="10 images, 2x2x2 grid, no fine stage")
    ap.add_argument("--pos-w", type=float, default=3.0)
    ap.add_argument("--pos-xy-std", type=float, default=3.0)
    ap.add_argument("--crf-iter", type=int, default=10)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="CPU processes (default: all cores)")
    ap.add_argument("--batch-size", type=int, default=4, help="images per GPU CRF call")
    ap.add_argument("--score-blob", help="blob with the upsampled scores (default: found)")
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


def _manifest(args, n):
    w = args.weights
    st = os.stat(w) if w and os.path.exists(w) else None
    return {"model": os.path.abspath(args.model), "weights": os.path.abspath(w) if w else None,
            "weights_size": st.st_size if st else None,
            "weights_mtime": st.st_mtime if st else None,
            "defines": sorted(args.define), "num_images": n, "score_blob": args.score_blob}


def load_or_compute(args, n, cache):
    """The held-out Samples and the net's own mIoU on them (scores computed once, cached)."""
    man_path = os.path.join(cache, "manifest.json")
    want = _manifest(args, n)
    if os.path.exists(man_path):
        with open(man_path) as f:
            have = json.load(f)
        if {k: have.get(k) for k in want} == want:
            samples = []
            for name in have["ids"]:
                with np.load(os.path.join(cache, name + ".npz")) as z:
                    samples.append(Sample(z["scores"], z["image"], z["label"], name))
            print(f"reusing the scores of {len(samples)} images from {cache}")
            return samples, have["net_miou"]
    from ..eval.testing import TestData, load_test_net, run_test
    net, named = load_test_net(args.model, args.weights, device_from_gpu(args.gpu),
                               parse_defines(args.define), os.path.join(cache, "features"))
    os.makedirs(cache, exist_ok=True)
    samples = []

    def keep(image_id, outs):
        if len(samples) >= n:
            return
        s = Sample(outs["net"].cpu().numpy().astype(np.float16), outs["image"],
                   outs["label"].astype(np.uint8), image_id)
        np.savez(os.path.join(cache, image_id + ".npz"), scores=s.scores, image=s.image,
                 label=s.label)
        samples.append(s)
    data = TestData(net)
    if n > len(data):
        print(f"the list has {len(data)} images; using all of them")
        n = len(data)
    batch = data.batch_size
    res = run_test(net, args.num_classes, -(-n // batch), score_blob=args.score_blob or named,
                   on_image=keep, progress=not args.quiet)
    net_miou = res.meters["net"].scores()["miou"]
    with open(man_path, "w") as f:
        json.dump(dict(want, ids=[s.name for s in samples], net_miou=net_miou), f, indent=1)
    return samples, net_miou


def heat_panels(rows):
    """One heat-map panel per bi_w: rows bi_xy_std, columns bi_rgb_std, value mIoU (%)."""
    panels = []
    for w in sorted({r["bi_w"] for r in rows}):
        sub = [r for r in rows if r["bi_w"] == w]
        xs = sorted({r["bi_xy_std"] for r in sub})
        cs = sorted({r["bi_rgb_std"] for r in sub})
        v = np.full((len(xs), len(cs)), np.nan)
        for r in sub:
            v[xs.index(r["bi_xy_std"]), cs.index(r["bi_rgb_std"])] = 100 * r["miou"]
        panels.append((f"bi_w {w:g}", xs, cs, v))
    return panels


def main(argv=None):
    args = parse_args(argv)
    try:
        n = 10 if args.quick and args.num_images == 100 else args.num_images
        if n < 1:
            raise CaffeError(f"--num-images must be >= 1, got {n}")
        coarse = parse_grid(args.grid) if args.grid else (QUICK_GRID if args.quick
                                                          else COARSE_GRID)
        radius = 0 if args.quick else args.fine_radius
        step = parse_values(args.fine_step)
        if len(step) != 3:
            raise CaffeError(f"--fine-step needs 3 values (W,XY,RGB), got {args.fine_step!r}")
        os.makedirs(args.out, exist_ok=True)
        samples, net_miou = load_or_compute(args, n, args.cache or os.path.join(args.out,
                                                                                "cache"))
        device = device_from_gpu(args.gpu)
        npts = int(np.prod([len(a) for a in coarse]))
        bar = RateProgress(npts * len(samples), "crf grid", enabled=not args.quiet)
        rows, best = coarse_to_fine(samples, args.num_classes, coarse, step, radius,
                                    pos_w=args.pos_w, pos_xy_std=args.pos_xy_std,
                                    max_iter=args.crf_iter, device=device,
                                    workers=args.workers, batch_size=args.batch_size,
                                    progress=lambda: bar.update(1))
        bar.close()
    except (CaffeError, ValueError) as e:
        print(f"crf_grid_search: error: {e}", file=sys.stderr)
        return 1
    keys = ["stage", "bi_w", "bi_xy_std", "bi_rgb_std", "miou", "pixel_acc", "mean_acc"]
    with open(os.path.join(args.out, "crf_grid.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: r[k] for k in keys})
    out = {"model": args.model, "weights": args.weights, "images": len(samples),
           "ids": [s.name for s in samples], "net_miou": net_miou,
           "pos_w": args.pos_w, "pos_xy_std": args.pos_xy_std, "max_iter": args.crf_iter,
           "coarse_grid": [list(a) for a in coarse], "best": best, "rows": rows}
    with open(os.path.join(args.out, "crf_grid.json"), "w") as f:
        json.dump(out, f, indent=1)
    for stage, name in (("coarse", "crf_grid.png"), ("fine", "crf_grid_fine.png")):
        sub = [r for r in rows if r["stage"] == stage or (stage == "fine" and r is best)]
        if stage == "fine" and not any(r["stage"] == "fine" for r in rows):
            continue
        heatmap(heat_panels(sub), os.path.join(args.out, name), "bi_xy_std", "bi_rgb_std",
                f"CRF {stage} grid, mIoU % on {len(samples)} images")
    print(f"net without CRF: mIoU {100 * net_miou:.2f}%  ({len(samples)} images)")
    print(f"best: bi_w {best['bi_w']:g}  bi_xy_std {best['bi_xy_std']:g}  bi_rgb_std "
          f"{best['bi_rgb_std']:g}  mIoU {100 * best['miou']:.2f}%  ({len(rows)} settings)")
    print(f"wrote {os.path.join(args.out, 'crf_grid.csv')}, crf_grid.json and heat map(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
