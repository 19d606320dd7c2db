"""Plot mean IoU (or pixel accuracy) against the trimap band width, with and without CRF, as
the paper's Figure 5.

From test_net results (run with --trimap):
    python tools/plot_trimap.py results.json [other.json ...] --out trimap.png
From saved label PNGs (test_net --save-labels) and the list the net was tested on:
    python tools/plot_trimap.py --list voc12/list/val.txt --root /data/VOC2012 \\
        --pred net=test_out/labels --pred CRF=test_out/labels_crf --out trimap.png

The band of width w holds the pixels within w px (Euclidean) of a void (255) pixel of the
ground truth; the list's second column names the ground-truth PNGs, and each prediction folder
holds <id>.png per image (the id is the image file name without extension).  A prediction
smaller than its ground truth is compared with the region DeepLab's TEST crop kept (centred).
"""
import argparse
import json
import os
import sys

from ..data.image_seg_data import parse_list
from ..data.voc import load_label
from ..errors import CaffeError
from ..eval.plots import line_plot
from ..eval.trimap import TrimapMeter, void_distance
from .flags import parse_widths


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="*", help="test_net JSON files with a 'trimap' section")
    ap.add_argument("--list", help="DeepLab list file (image and label paths)")
    ap.add_argument("--root", default="", help="root_folder prefixed to the list's paths")
    ap.add_argument("--pred", action="append", default=[], metavar="NAME=DIR",
                    help="a folder of predicted label PNGs (repeatable)")
    ap.add_argument("--widths", default="1-40", help="band widths A-B (default 1-40)")
    ap.add_argument("--num-classes", type=int, default=21)
    ap.add_argument("--out", default="trimap.png", help="PNG to write (default trimap.png)")
    ap.add_argument("--json", help="also write the curves as JSON")
    ap.add_argument("--metric", choices=("miou", "pixel_acc"), default="miou",
                    help="mean IoU (Figure 5c, default) or pixel accuracy (Figure 5b)")
    ap.add_argument("--title", help="plot title")
    return ap.parse_args(argv)


def curves_from_json(paths, metric="miou"):
    series = {}
    for path in paths:
        try:
            with open(path) as f:
                res = json.load(f)
        except (OSError, ValueError) as e:
            raise CaffeError(f"{path}: cannot read test_net results ({e})") from None
        tri = res.get("trimap")
        if not tri:
            raise CaffeError(f"{path}: no 'trimap' section; run test_net with --trimap")
        tag = os.path.splitext(os.path.basename(path))[0] if len(paths) > 1 else ""
        for key in ("net", "crf"):
            field = key if metric == "miou" else f"{key}_{metric}"
            if field in tri:
                name = {"net": "DeepLab", "crf": "DeepLab-CRF"}[key]
                series[f"{tag} {name}".strip()] = (tri["widths"], [
                    None if v is None else 100 * v for v in tri[field]])
    return series


def curves_from_pngs(list_path, root, preds, widths, num_classes, metric="miou"):
    dirs = []
    for item in preds:
        if "=" not in item:
            raise CaffeError(f"--pred expects NAME=DIR, got {item!r}")
        name, d = item.split("=", 1)
        if not os.path.isdir(d):
            raise CaffeError(f"--pred {item}: {d} is not a folder")
        dirs.append((name, d))
    if not dirs:
        raise CaffeError("--list needs at least one --pred NAME=DIR")
    meters = {name: TrimapMeter(num_classes, widths) for name, _ in dirs}
    for entry in parse_list(list_path, "PIXEL"):
        gt = load_label(root + entry.label)
        image_id = os.path.splitext(os.path.basename(entry.image))[0]
        dist = None
        for name, d in dirs:
            pred = load_label(os.path.join(d, image_id + ".png"))
            h, w = pred.shape
            if h > gt.shape[0] or w > gt.shape[1]:
                raise CaffeError(f"{os.path.join(d, image_id + '.png')} is {w}x{h}, larger "
                                 f"than its ground truth {gt.shape[1]}x{gt.shape[0]}")
            # DeepLab's TEST crop: centred when the image is larger than the crop, else the
            # whole image at the top-left; either way the offset is (size - kept) // 2.
            y0, x0 = (gt.shape[0] - h) // 2, (gt.shape[1] - w) // 2
            g = gt[y0:y0 + h, x0:x0 + w]
            if dist is None or dist.shape != g.shape:
                dist = void_distance(g, max(widths))
            meters[name].add(pred, g, dist=dist)
    return {name: (widths, [100 * s[metric] for s in m.scores()]) for name, m in meters.items()}


def main(argv=None):
    args = parse_args(argv)
    try:
        widths = parse_widths(args.widths, "--widths")
        series = {}
        if args.results:
            series.update(curves_from_json(args.results, args.metric))
        if args.list:
            series.update(curves_from_pngs(args.list, args.root, args.pred, widths,
                                           args.num_classes, args.metric))
        if not series:
            raise CaffeError("give test_net JSON files, or --list with --pred folders")
        what = "mean IoU" if args.metric == "miou" else "pixel accuracy"
        line_plot(series, args.out, args.title or f"{what} within the trimap band",
                  "trimap width (pixels)", f"{what} (%)")
    except (CaffeError, ValueError) as e:
        print(f"plot_trimap: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: {"widths": list(x), args.metric: list(y)}
                       for k, (x, y) in series.items()}, f, indent=1)
    for name, (xs, ys) in series.items():
        shown = ", ".join(f"{x}:{'n/a' if y is None or y != y else f'{y:.1f}'}"
                          for x, y in list(zip(xs, ys))[:5])
        print(f"{name}: {shown} ...")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
