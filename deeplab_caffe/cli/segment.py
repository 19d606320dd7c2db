"""Segment images with a DeepLab net: VOC-palette label PNGs and side-by-side panels.

    python tools/segment.py --model prototxt/DeepLab-LargeFOV/test_crf.prototxt --weights W \\
        --define NUM_LABELS=21 img1.jpg img2.jpg ... --out seg_out [--crf] [--gpu 0]

Any image size: each batch is padded (with the mean, at the bottom/right, as DeepLab's test
phase does) to the smallest size the net maps onto itself, or to the prototxt's own input size
when the net cannot reshape (larger images are then centre-cropped).  The model may be a test
prototxt (its ImageSegData layer is fed directly; placeholders other than those given default to
"unused") or a deploy prototxt with an Input layer.  Writes OUT/<name>.png (net labels),
OUT/<name>_crf.png (with --crf or a DENSE_CRF layer) and OUT/<name>_panel.png
(input | net | net+CRF, labels blended over the image).
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

from ..data.voc import save_label
from ..errors import CaffeError, WriteError
from ..eval.netutil import placeholders
from ..eval.palette import overlay, panel
from ..log import RateProgress
from .flags import add_crf_args, add_net_flags, crf_params, device_from_gpu, parse_defines


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+", help="image files (any size, any PIL format)")
    add_net_flags(ap, "test or deploy prototxt")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--crf", action="store_true", help="also run the dense CRF")
    add_crf_args(ap)
    ap.add_argument("--batch-size", type=int, default=4, help="images per forward (default 4)")
    ap.add_argument("--num-classes", type=int, help="check the score blob's channel count")
    ap.add_argument("--score-blob", help="blob with the upsampled scores (default: found)")
    ap.add_argument("--crf-blob", help="blob with the CRF marginals (default: DENSE_CRF top)")
    ap.add_argument("--mean", type=float, nargs=3, metavar=("B", "G", "R"),
                    help="mean to subtract (default: the prototxt's, else DeepLab's)")
    ap.add_argument("--alpha", type=float, default=0.6, help="overlay opacity (default 0.6)")
    ap.add_argument("--no-panel", action="store_true", help="label PNGs only")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def load_rgb(path):
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise CaffeError(f"{path}: image file not found") from None
    except OSError as e:
        raise CaffeError(f"{path}: cannot read image ({e})") from None


def main(argv=None):
    args = parse_args(argv)
    try:
        from ..eval.inference import Segmenter, labels_of
        if args.batch_size < 1:
            raise CaffeError(f"--batch-size must be >= 1, got {args.batch_size}")
        defines = parse_defines(args.define)
        for name in placeholders(args.model):
            defines.setdefault(name, "unused")
        seg = Segmenter(args.model, args.weights, device_from_gpu(args.gpu), defines,
                        crf=crf_params(args) if args.crf else None, score_blob=args.score_blob,
                        crf_blob=args.crf_blob, num_classes=args.num_classes,
                        mean_bgr=args.mean)
        os.makedirs(args.out, exist_ok=True)
        bar = RateProgress(len(args.images), "segment", enabled=not args.quiet)
        stems = set()
        for start in range(0, len(args.images), args.batch_size):
            paths = args.images[start:start + args.batch_size]
            imgs = [load_rgb(p) for p in paths]
            for path, img, res in zip(paths, imgs, seg(imgs)):
                stem = os.path.splitext(os.path.basename(path))[0]
                if stem in stems:
                    raise CaffeError(f"{path}: another image is also named '{stem}'; outputs "
                                     "would overwrite each other")
                stems.add(stem)
                tiles, titles = [img], ["input"]
                for key, suffix in (("net", ""), ("crf", "_crf")):
                    if key not in res:
                        continue
                    lab = labels_of(res, key)
                    save_label(os.path.join(args.out, stem + suffix + ".png"), lab)
                    tiles.append(overlay(img, lab, args.alpha))
                    titles.append("net" if key == "net" else "net+CRF")
                if not args.no_panel:
                    panel(tiles, titles).save(os.path.join(args.out, stem + "_panel.png"))
                bar.update(1)
        bar.close()
    except (CaffeError, ValueError) as e:
        print(f"segment: error: {e}", file=sys.stderr)
        return e.exit_code if isinstance(e, WriteError) else 1
    print(f"wrote {len(stems)} segmentation(s) to {args.out}"
          + (" (with CRF)" if seg.has_crf else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
