"""Test a DeepLab net on its list as DeepLab's test phase did, with and without the dense CRF.

    python tools/test_net.py --model prototxt/DeepLab-LargeFOV/test.prototxt --weights W \\
        --define EXP=voc12 --define DATA_ROOT=/data/VOC2012 --define TEST_SET=val \\
        --define NUM_LABELS=21 --define NET_ID=DeepLab-LargeFOV [--crf] [--gpu 0] --out results

Batch 1, crop 513 (514 for DeepLab), the net's Interp upsampling; every image is scored on its
valid region (inside the mean padding).  --crf runs the dense CRF on the upsampled scores with
--bi-w/--bi-xy-std/--bi-rgb-std/--pos-w/--pos-xy-std/--crf-iter (default: DeepLab-LargeFOV's
4/121/5/3/3/10); a test_crf.prototxt (a DENSE_CRF layer in the net) is scored with and without
its CRF whether or not --crf is given.  Ground truth: the data layer's label top when
label_type is PIXEL, else the list's second column.  Prints per-class IoU and mIoU, writes JSON
(--json, default OUT/results.json) and, on request, score maps (.npy, C x h x w float32) and
palette label PNGs.  --trimap adds the mIoU and pixel accuracy within 1..40 px of the void band
(Figure 5 of the paper); plot them with tools/plot_trimap.py.
"""
import argparse
import json
import os
import sys

import numpy as np

from ..data.voc import VOC_CLASSES, save_label
from ..errors import CaffeError, WriteError
from ..io._files import atomic_write
from ..eval.metrics import format_table, result_json
from .flags import (add_crf_args, add_net_flags, crf_params, device_from_gpu, parse_defines,
                    parse_widths)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_net_flags(ap, "test.prototxt or test_crf.prototxt")
    ap.add_argument("--iterations", type=int, help="forward passes (default: the whole list)")
    ap.add_argument("--num-classes", type=int, default=21)
    ap.add_argument("--crf", action="store_true", help="also score with the dense CRF")
    add_crf_args(ap)
    ap.add_argument("--out", default="test_out", help="output folder (default test_out)")
    ap.add_argument("--json", help="results JSON (default OUT/results.json)")
    ap.add_argument("--save-scores", action="store_true",
                    help="OUT/scores[_crf]/<id>.npy: C x h x w float32 scores / marginals")
    ap.add_argument("--save-labels", action="store_true",
                    help="OUT/labels[_crf]/<id>.png: palette PNGs of the predicted labels")
    ap.add_argument("--mat-write", action="store_true",
                    help="keep the prototxt's MAT_WRITE layers (full score blobs under "
                    "${FEATURE_DIR}, default OUT/features); by default they are skipped")
    ap.add_argument("--mat-format", choices=("mat", "npy"), default="mat",
                    help="with --mat-write: MATLAB files as DeepLab's (default) or .npy")
    ap.add_argument("--trimap", nargs="?", const="1-40", metavar="A-B",
                    help="also score the trimap bands of width A..B px (default 1-40)")
    ap.add_argument("--score-blob", help="blob with the upsampled scores (default: found)")
    ap.add_argument("--crf-blob", help="blob with the CRF marginals (default: DENSE_CRF top)")
    ap.add_argument("--absent", choices=("skip", "zero", "one"), default="skip",
                    help="IoU of a class in neither GT nor prediction: left out of the mean "
                    "(skip, default), 0, or 1 (SEG_ACCURACY)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        from ..eval.testing import load_test_net, run_test
        os.makedirs(args.out, exist_ok=True)
        widths = parse_widths(args.trimap) if args.trimap else None
        net, named = load_test_net(args.model, args.weights, device_from_gpu(args.gpu),
                                   parse_defines(args.define),
                                   os.path.join(args.out, "features"), args.mat_write)
        for layer in net.layers:
            if layer.type_name == "MatWrite":
                layer.file_format = args.mat_format
        names = VOC_CLASSES if args.num_classes == len(VOC_CLASSES) else None

        def on_image(image_id, outs):
            for key in ("net", "crf"):
                if key not in outs:
                    continue
                suffix = "" if key == "net" else "_crf"
                if args.save_scores:
                    d = os.path.join(args.out, "scores" + suffix)
                    os.makedirs(d, exist_ok=True)
                    with atomic_write(os.path.join(d, image_id + ".npy"), fsync=False) as f:
                        np.save(f, outs[key].float().cpu().numpy())
                if args.save_labels:
                    d = os.path.join(args.out, "labels" + suffix)
                    os.makedirs(d, exist_ok=True)
                    save_label(os.path.join(d, image_id + ".png"),
                               outs[key].argmax(0).cpu().numpy().astype(np.uint8))
        hook = on_image if (args.save_scores or args.save_labels) else None
        res = run_test(net, args.num_classes, args.iterations,
                       crf=crf_params(args) if args.crf else None, trimap_widths=widths,
                       score_blob=args.score_blob or named, crf_blob=args.crf_blob,
                       on_image=hook,
                       progress=not args.quiet)
    except (CaffeError, ValueError) as e:
        print(f"test_net: error: {e}", file=sys.stderr)
        return e.exit_code if isinstance(e, WriteError) else 1
    scores = {n: res.meters[n].scores(args.absent) for n in res.names}
    print(f"{res.images} images, {res.seconds:.1f} s ({res.images / max(res.seconds, 1e-9):.2f} "
          f"img/s); scores from '{res.score_blob}'"
          + (f", CRF from {res.crf_source}" if res.crf_source else ""))
    print(format_table(scores, names))
    out = {"model": args.model, "weights": args.weights, "num_classes": args.num_classes,
           "class_names": list(names) if names else None, "images": res.images,
           "seconds": res.seconds, "images_per_s": res.images / max(res.seconds, 1e-9),
           "score_blob": res.score_blob, "crf_blob": res.crf_blob, "crf_source": res.crf_source,
           "absent": args.absent}
    if res.crf_source == "dense_crf":
        out["crf_params"] = crf_params(args).as_dict()
    for n in res.names:
        out[n] = result_json(scores[n])
        out[n]["conf"] = res.meters[n].conf.tolist()
    if res.trimap:
        # "<name>": mean IoU per width, "<name>_pixel_acc": pixel accuracy (Figure 5 c and b)
        out["trimap"] = {"widths": res.trimap[res.names[0]].widths}
        for n in res.names:
            ts = res.trimap[n].scores(args.absent)
            out["trimap"][n] = result_json({"m": np.array([t["miou"] for t in ts])})["m"]
            out["trimap"][n + "_pixel_acc"] = result_json(
                {"m": np.array([t["pixel_acc"] for t in ts])})["m"]
    path = args.json or os.path.join(args.out, "results.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
