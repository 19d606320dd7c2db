"""Port Caffe weights: .caffemodel -> .pt (plain state dict), .caffemodel (V1 <-> V2) or
.caffemodel.h5 (Caffe's HDF5 layout), and build DeepLab v1 init weights from BVLC's ImageNet
VGG-16.

    python tools/port_caffemodel.py IN.caffemodel OUT.pt
    python tools/port_caffemodel.py IN.caffemodel OUT.caffemodel --format v1|v2
    python tools/port_caffemodel.py IN.caffemodel OUT.caffemodel.h5
    python tools/port_caffemodel.py VGG_ILSVRC_16_layers.caffemodel init.caffemodel \\
        --from-vgg16 --to prototxt/DeepLab-LargeFOV/train.prototxt     (or --variant largefov)

The .pt file is ``{"<layer>.<i>": float32 tensor}`` (blob i of the layer, Caffe's shapes), read
with ``torch.load(path, weights_only=True)``.  IN may also be such a .pt file or a
.caffemodel.h5.  A summary table of what was written (layer, type, blob shapes, parameter
count) is printed.
"""
import argparse
import logging
import sys

from ..errors import CaffeError
from ..io import read_weights, save_pt, write_caffemodel
from ..io.hdf5 import write_caffemodel_h5
from ..io.summary import format_summary
from ..io.vgg16 import VARIANTS, deeplab_init_layers, variant_from_path


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help=".caffemodel (V1, DeepLab v1 or V2), .caffemodel.h5 or .pt")
    ap.add_argument("output", help=".pt, .caffemodel or .h5")
    ap.add_argument("--schema", choices=("auto", "bvlc", "deeplab_v1"), default="auto",
                    help="how to read a V1 input (default: decide from the file)")
    ap.add_argument("--format", choices=("v1", "v2"),
                    help="caffemodel output: v2 (layer, BlobShape; default) or v1 (layers, "
                    "legacy 4-D; default with --from-vgg16, as DeepLab v1's Caffe reads V1 only)")
    ap.add_argument("--from-vgg16", action="store_true",
                    help="INPUT is VGG-16: write DeepLab init weights (needs --to or --variant)")
    ap.add_argument("--to", metavar="PROTOTXT", help="the DeepLab prototxt the init is for; its "
                    "folder (DeepLab-LargeFOV, DeepLab-4x4, ...) names the variant")
    ap.add_argument("--variant", choices=sorted(VARIANTS), help="instead of --to")
    ap.add_argument("--taps", default="rf", help="fc6 tap pattern: 'rf' (spread over 7x7, keeps "
                    "the receptive field; default) or comma-separated indices in 0..6")
    ap.add_argument("--channel-offset", type=int, default=0,
                    help="first kept fc6/fc7 filter when reducing channels (default 0)")
    ap.add_argument("--quiet", action="store_true", help="no summary table")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        model = read_weights(args.input, args.schema)
        layers = model.layers
        fmt = args.format
        if args.from_vgg16:
            if (args.to is None) == (args.variant is None):
                raise CaffeError("--from-vgg16 needs exactly one of --to PROTOTXT or --variant")
            variant = args.variant or variant_from_path(args.to)
            taps = args.taps if args.taps == "rf" else [int(t) for t in args.taps.split(",")]
            layers = deeplab_init_layers(model, variant, taps, args.channel_offset)
            fmt = fmt or "v1"
            print(f"DeepLab init ({variant}: fc6 {VARIANTS[variant][0]}x{VARIANTS[variant][0]} "
                  f"taps {args.taps}, {VARIANTS[variant][1]} channels) from {args.input}")
        if args.output.endswith((".pt", ".pth")):
            save_pt(args.output, layers)
        elif args.output.endswith(".h5"):
            write_caffemodel_h5(args.output, layers)
        else:
            write_caffemodel(args.output, layers if args.from_vgg16 else model,
                             format=fmt or "v2", name=model.name or None)
    except (CaffeError, ValueError) as e:
        print(f"port_caffemodel: error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(format_summary(layers, f"{args.output} (from {args.input}, {model.format} "
                                     f"{model.schema})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
