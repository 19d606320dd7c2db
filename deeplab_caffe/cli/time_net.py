#!/usr/bin/env python3
"""Per-layer forward and backward times of a net, like ``caffe time``.

  python tools/time_net.py --model M.prototxt [--iterations 50] [--gpu 0|-1] [--phase TRAIN]
                           [--define KEY=VALUE ...] [--json out.json]

Caffe's benchmark loop: one untimed forward and backward, then per iteration every layer's
forward in order and every layer's backward in reverse order, each timed on its own (a layer's
backward is the gradient of its tops with respect to its bottoms and blobs, given the diffs its
consumers passed down: the loss weight for loss tops, zeros for outputs nothing consumes, so a
net without a loss still runs a backward).  Input layers get random data of their declared shape
(zeros for blobs named *label*).  On a GPU every measurement is bracketed by synchronisation, so
the numbers are wall-clock milliseconds.  ``deeplab-caffe time`` uses the same loop.
"""
import argparse
import json
import sys
import time

import torch

from .. import build_info
from ..errors import CaffeError
from ..net import Net
from .flags import add_net_flags, device_from_gpu, parse_defines


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


class LayerTimer:
    """Runs ``net`` layer by layer as Caffe's ``time`` does, timing each layer's forward and
    backward; ``pass_ms`` adds one iteration's times to ``forward_ms`` / ``backward_ms`` (per
    layer, summed over iterations) and returns the iteration's wall-clock milliseconds."""

    def __init__(self, net, device):
        self.net, self.device = net, torch.device(device)
        self.feeds = random_inputs(net, self.device)
        n = len(net.layers)
        self.forward_ms, self.backward_ms = [0.0] * n, [0.0] * n
        self.forward_total_ms = self.backward_total_ms = 0.0

    def _now(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _forward_layer(self, li, current):
        """One layer's forward with its own autograd graph: (inputs that need a diff, tops,
        where each bottom came from).  ``current`` maps a blob name to (tensor, producer)."""
        net, layer = self.net, self.net.layers[li]
        if layer.type_name == "Input":
            outs = layer(*[self.feeds.get(t) for t in net._tops[li]])
            return [], outs, []
        ins, sources = [], []
        for bi, b in enumerate(net._bottoms[li]):
            x, source = current[b]
            # Caffe's bottom_need_backward: the blob depends on learnable blobs.
            if x.requires_grad and x.is_floating_point() and net._propagate[li][bi]:
                x = x.detach().requires_grad_()
            else:
                x = x.detach()
            ins.append(x)
            sources.append(source)
        return ins, layer(*ins), sources

    def pass_ms(self):
        net = self.net
        start = self._now()
        current, records = {}, []
        t_fwd = self._now()
        for li in range(len(net.layers)):
            t = self._now()
            ins, outs, sources = self._forward_layer(li, current)
            outs = outs if isinstance(outs, (tuple, list)) else (outs,)
            self.forward_ms[li] += (self._now() - t) * 1e3
            for k, (name, v) in enumerate(zip(net._tops[li], outs)):
                current[name] = (v, (li, k))
            records.append((ins, outs, sources))
        self.forward_total_ms += (self._now() - t_fwd) * 1e3
        t_bwd = self._now()
        diffs = {}
        for li in reversed(range(len(net.layers))):
            t = self._now()
            self._backward_layer(li, records[li], diffs)
            self.backward_ms[li] += (self._now() - t) * 1e3
        self.backward_total_ms += (self._now() - t_bwd) * 1e3
        return (self._now() - start) * 1e3

    def _backward_layer(self, li, record, diffs):
        ins, outs, sources = record
        layer = self.net.layers[li]
        wanted = [x for x in ins if x.requires_grad] + \
            [p for p in layer.blobs if p.requires_grad]
        ys, grads = [], []
        for k, y in enumerate(outs):
            if isinstance(y, torch.Tensor) and y.requires_grad:
                seed = diffs.pop((li, k), None)
                weight = self.net._loss_weights[li][k]
                if seed is None:
                    seed = torch.full_like(y, weight) if weight else torch.zeros_like(y)
                elif weight:
                    seed = seed + weight
                ys.append(y)
                grads.append(seed)
        if not ys or not wanted:
            return
        got = torch.autograd.grad(ys, wanted, grads, allow_unused=True)
        for x, source, g in zip(ins, sources, got):
            if x.requires_grad and g is not None:
                diffs[source] = diffs[source] + g if source in diffs else g


def time_layers(net, iterations, device, on_iteration=None):
    """Caffe's benchmark: (rows, average forward ms, average backward ms, average
    forward-backward ms).  rows: {"layer", "type", "forward_ms", "backward_ms"} averaged over
    ``iterations``; on_iteration(j, ms) is called after each iteration (j from 1)."""
    timer = LayerTimer(net, device)
    timer.pass_ms()            # Caffe's clean forward and backward before the benchmark
    timer = LayerTimer(net, device)
    t0 = time.perf_counter()
    for j in range(iterations):
        ms = timer.pass_ms()
        if on_iteration is not None:
            on_iteration(j + 1, ms)
    total_ms = (time.perf_counter() - t0) * 1e3
    n = max(1, iterations)
    rows = [{"layer": name, "type": layer.type_name, "forward_ms": f / n, "backward_ms": b / n}
            for name, layer, f, b in zip(net.layer_names, net.layers, timer.forward_ms,
                                         timer.backward_ms)]
    net.zero_grad(set_to_none=True)
    return rows, timer.forward_total_ms / n, timer.backward_total_ms / n, total_ms / n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_net_flags(ap, "net prototxt", "optional .caffemodel / .pt to load")
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--phase", default="TRAIN", choices=["TRAIN", "TEST"],
                    help="net phase (default TRAIN, as caffe time)")
    ap.add_argument("--json", help="write the table as JSON here")
    args = ap.parse_args(argv)
    try:
        device = torch.device(device_from_gpu(args.gpu))
        net = Net(args.model, weights=args.weights, phase=args.phase, device=device,
                  defines=parse_defines(args.define))
        rows, fwd, bwd, whole = time_layers(net, args.iterations, device)
    except (CaffeError, OSError) as e:
        print(f"time_net: {e}", file=sys.stderr)
        return 1
    width = max(len(r["layer"]) for r in rows)
    print(f"{'layer':<{width}}  {'type':<16} {'forward ms':>11} {'backward ms':>12}")
    for r in rows:
        print(f"{r['layer']:<{width}}  {r['type']:<16} {r['forward_ms']:>11.3f} "
              f"{r['backward_ms']:>12.3f}")
    print(f"Average Forward pass: {fwd:.3f} ms.")
    print(f"Average Backward pass: {bwd:.3f} ms.")
    print(f"Average Forward-Backward: {whole:.3f} ms.")
    print(f"Device: {device}; {args.iterations} iterations.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "device": str(device), "phase": args.phase,
                       "iterations": args.iterations, "layers": rows,
                       "forward_ms": fwd, "backward_ms": bwd, "forward_backward_ms": whole,
                       "build_info": build_info()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
