"""Benchmark: read a VGG-16-sized .caffemodel (about 553 MB, 138M float32 weights).

Writes a synthetic file with VGG-16's layer names and blob shapes (random weights) to
/tmp (or --path), reads it back with deeplab_caffe.io.read_caffemodel and prints the times.
Not a test: it prints, it does not assert.

    python tools/bench_caffemodel_read.py [--format v1|v2] [--repeat 3] [--json out.json]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from ..io import read_caffemodel, write_caffemodel

VGG16_CONV = [("conv1_1", 64, 3), ("conv1_2", 64, 64), ("conv2_1", 128, 64),
              ("conv2_2", 128, 128), ("conv3_1", 256, 128), ("conv3_2", 256, 256),
              ("conv3_3", 256, 256), ("conv4_1", 512, 256), ("conv4_2", 512, 512),
              ("conv4_3", 512, 512), ("conv5_1", 512, 512), ("conv5_2", 512, 512),
              ("conv5_3", 512, 512)]
VGG16_FC = [("fc6", 4096, 25088), ("fc7", 4096, 4096), ("fc8", 1000, 4096)]


def vgg16_layers(seed=0):
    """(name, type, [weights, bias]) for VGG-16, float32 random values."""
    rng = np.random.default_rng(seed)
    layers = []
    for name, out, inp in VGG16_CONV:
        layers.append((name, "Convolution",
                       [rng.standard_normal((out, inp, 3, 3), np.float32),
                        rng.standard_normal(out, np.float32)]))
        layers.append((name.replace("conv", "relu"), "ReLU", []))
    for name, out, inp in VGG16_FC:
        layers.append((name, "InnerProduct", [rng.standard_normal((out, inp), np.float32),
                                              rng.standard_normal(out, np.float32)]))
    return layers


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", default="/tmp/dc_bench_vgg16.caffemodel")
    ap.add_argument("--format", choices=("v1", "v2"), default="v1")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic file")
    args = ap.parse_args(argv)
    layers = vgg16_layers()
    t = time.perf_counter()
    write_caffemodel(args.path, layers, format=args.format, name="VGG_ILSVRC_16_layers",
                     fsync=False)
    t_write = time.perf_counter() - t
    size = os.path.getsize(args.path)
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        model = read_caffemodel(args.path)
        times.append(time.perf_counter() - t)
        del model
    model = read_caffemodel(args.path)
    for (name, _, blobs), layer in zip(layers, model.layers):
        assert layer.name == name and all(np.array_equal(a, b) for a, b in
                                          zip(blobs, layer.blobs)), name
    n_params = sum(b.size for _, _, bl in layers for b in bl)
    print(f"file     {args.path}  {size / 1e6:.1f} MB  ({args.format}, {n_params / 1e6:.1f}M "
          "weights)")
    print(f"write    {t_write:.2f} s")
    print("read     " + "  ".join(f"{x:.3f} s" for x in times) +
          f"   best {min(times):.3f} s = {size / 1e9 / min(times):.2f} GB/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bytes": size, "format": args.format, "write_s": t_write,
                       "read_s": times}, f, indent=1)
    if not args.keep:
        os.remove(args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
