#!/usr/bin/env python3
"""Per-layer forward and backward times of a net, like ``caffe time``.

  python tools/time_net.py --model M.prototxt [--iterations 50] [--gpu 0|-1] [--phase TRAIN]
                           [--define KEY=VALUE ...] [--json out.json]

Each layer is timed on its own (inputs from one full forward pass; backward = gradients of the
layer's tops with respect to its bottoms and blobs), then the whole net's forward and
forward+backward.  Input layers get random data of their declared shape (zeros for blobs named *label*).  On a GPU every
measurement is bracketed by synchronisation, so the numbers are wall-clock milliseconds.
"""
import argparse
import json
import statistics
import sys
import time

import torch

from .. import build_info
from ..errors import CaffeError
from ..net import Net
from .flags import add_net_flags, device_from_gpu, parse_defines


def timer(device):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def measure(fn, iterations):
        fn()  # warm-up
        times = []
        for _ in range(iterations):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.mean(times)
    return measure


def random_inputs(net, device):
    feeds = {}
    for name in net.inputs:
        shape = net.blob_shapes.get(name)
        if not shape:
            raise CaffeError(f"input blob '{name}' has no declared shape; give input_param shape")
        # Label blobs get class 0 so loss layers accept them; everything else N(0, 1).
        feeds[name] = (torch.zeros(shape, device=device) if "label" in name
                       else torch.randn(shape, device=device))
    return feeds


def time_layers(net, iterations, device):
    measure = timer(device)
    feeds = random_inputs(net, device)
    net.forward(**feeds)  # fills net.blobs with one pass's values
    # Blob values as each layer saw them (in-place layers overwrite, so replay in order).
    values = dict(feeds)
    rows = []
    for li, (name, layer) in enumerate(zip(net.layer_names, net.layers)):
        bottoms = [values[b].detach() for b in net._bottoms[li]]
        if layer.type_name == "Input":
            args = [values[t] for t in net._tops[li]]
            outs = layer(*args)
        else:
            outs = layer(*bottoms)
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        fwd = measure(lambda: layer(*bottoms) if layer.type_name != "Input" else None, iterations)
        bwd = 0.0
        diff_in = [b.clone().requires_grad_() for b in bottoms if b.is_floating_point()]
        params = [p for p in layer.blobs if p.requires_grad]
        if net.training and (diff_in or params) and layer.type_name != "Input":
            def backward():
                ins = []
                it = iter(diff_in)
                for b in bottoms:
                    ins.append(next(it) if b.is_floating_point() else b)
                ys = layer(*ins)
                ys = [y for y in (ys if isinstance(ys, (tuple, list)) else (ys,))
                      if isinstance(y, torch.Tensor) and y.requires_grad]
                if ys:
                    torch.autograd.grad(ys, diff_in + params, [torch.ones_like(y) for y in ys],
                                        allow_unused=True)
            total = measure(backward, iterations)
            bwd = max(0.0, total - fwd)
        for t, v in zip(net._tops[li], outs):
            values[t] = v.detach() if isinstance(v, torch.Tensor) else v
        rows.append({"layer": name, "type": layer.type_name, "forward_ms": fwd,
                     "backward_ms": bwd})
    whole_fwd = measure(lambda: net.forward(**feeds), iterations)

    def fwd_bwd():
        net.forward(**feeds)
        if net.loss.requires_grad:
            net.loss.backward()
    whole_fb = measure(fwd_bwd, iterations) if net.training else whole_fwd
    net.zero_grad(set_to_none=True)
    return rows, whole_fwd, whole_fb


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_net_flags(ap, "net prototxt", "optional .caffemodel / .pt to load")
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--phase", default="TRAIN", choices=["TRAIN", "TEST"],
                    help="TRAIN (default, as caffe time) also times backward")
    ap.add_argument("--json", help="write the table as JSON here")
    args = ap.parse_args(argv)
    try:
        device = torch.device(device_from_gpu(args.gpu))
        net = Net(args.model, weights=args.weights, phase=args.phase, device=device,
                     defines=parse_defines(args.define))
        rows, whole_fwd, whole_fb = time_layers(net, args.iterations, device)
    except (CaffeError, OSError) as e:
        print(f"time_net: {e}", file=sys.stderr)
        return 1
    width = max(len(r["layer"]) for r in rows)
    print(f"{'layer':<{width}}  {'type':<16} {'forward ms':>11} {'backward ms':>12}")
    for r in rows:
        print(f"{r['layer']:<{width}}  {r['type']:<16} {r['forward_ms']:>11.3f} "
              f"{r['backward_ms']:>12.3f}")
    print(f"Average Forward pass: {whole_fwd:.3f} ms.")
    if args.phase == "TRAIN":
        print(f"Average Backward pass: {max(0.0, whole_fb - whole_fwd):.3f} ms.")
        print(f"Average Forward-Backward: {whole_fb:.3f} ms.")
    print(f"Device: {device}; {args.iterations} iterations.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "device": str(device), "phase": args.phase,
                       "iterations": args.iterations, "layers": rows,
                       "forward_ms": whole_fwd, "forward_backward_ms": whole_fb,
                       "build_info": build_info()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
