"""Running a pycaffe Net: Caffe's ForwardFromTo / BackwardFromTo over the net's blob memory, and
pycaffe's helpers on top (forward_all, forward_backward_all, set_input_arrays).  The functions are
methods of ``pycaffe.net.Net``; they live here to keep that module to its accessors."""
import collections

import numpy as np
import torch

from ..errors import CaffeError
from .need_backward import NeedBackward
from .net import user_errors


def _layer_range(net, start, end, default_start, default_end):
    i0 = net._layer_index(start, "start") if start is not None else default_start
    i1 = net._layer_index(end, "end") if end is not None else default_end
    return i0, i1


def _forward_layer(self, li, record, need=None):
    """Run layer ``li`` on the blobs; ``record``: keep its graph, its bottoms leaves where the
    backward propagates to them (``need``, a NeedBackward, made here when not given)."""
    core = self._core
    layer, bottoms, tops = core.layers[li], core._bottoms[li], core._tops[li]
    if record and need is None:
        need = NeedBackward(core)
    needs = need.bottom[li] if record else [False] * len(bottoms)
    inputs = []
    for b, need in zip(bottoms, needs):
        x = self._data[b]
        # An in-place layer overwrites its bottom: its graph keeps a copy.
        x = x.clone() if b in tops else x.detach()
        inputs.append(x.requires_grad_(need and x.is_floating_point()))
    args = inputs if bottoms or layer.type_name != "Input" else \
        [self._data[t] for t in tops]
    with torch.enable_grad() if record else torch.no_grad(), user_errors():
        outs = layer(*args)
    if not isinstance(outs, (tuple, list)):
        outs = (outs,)
    for t, v in zip(tops, outs):
        self._store(t, v.detach())
        self._imported[t] = core.blobs.get(t) if core.blobs else None
    self._graphs[li] = (inputs, list(outs)) if record else None


def forward(self, blobs=None, start=None, end=None, **kwargs):
    """pycaffe's Net.forward: set the input blobs given as keywords, run layers start..end
    (names), return {blob: data} for the net's outputs (or the end layer's tops) plus ``blobs``."""
    blobs = list(blobs or [])
    i0, i1 = _layer_range(self, start, end, 0, len(self._core.layers) - 1)
    outputs = set((self.top_names[end] if end is not None else self.outputs) + blobs)
    for name, value in kwargs.items():
        if name not in self.inputs:
            raise CaffeError(f"forward: '{name}' is not an input blob (inputs: {self.inputs})")
        if np.shape(value)[0] != self.blobs[name].shape[0]:
            raise CaffeError(f"forward: input '{name}' has batch {np.shape(value)[0]}, the "
                             f"blob has {self.blobs[name].shape[0]}")
        self.blobs[name].data[...] = value
    self.blobs               # take in any results of the wrapped net's own forward first
    self._push_host()
    record = self._core.records_backward
    need = NeedBackward(self._core) if record else None
    for li in range(i0, i1 + 1):
        _forward_layer(self, li, record, need)
    loss = torch.zeros(())
    for li in range(i0, i1 + 1):
        for t, w in zip(self._core._tops[li], self._core._loss_weights[li]):
            if w:
                loss = loss + w * self._data[t].detach().sum().cpu()
    self.loss = float(loss)
    return {name: self.blobs[name].data for name in outputs}


def _backward_layer(self, li, written, need):
    core = self._core
    if not need.layer[li]:
        return
    if self._graphs.get(li) is None:
        # No forward of this layer since the last change (pycaffe may call backward first):
        # its graph from the current bottoms, tops left as they are (Caffe's Backward reads the
        # blobs as they stand).
        saved = {t: self._data[t].clone() for t in core._tops[li]}
        _forward_layer(self, li, True, need)
        for t, v in saved.items():
            self._store(t, v)
    graph = self._graphs[li]
    inputs, outs = graph
    tops, bottoms = core._tops[li], core._bottoms[li]
    layer = core.layers[li]
    tensors, grads = [], []
    for k, v in enumerate(outs):
        if not v.requires_grad:
            continue
        if k < len(tops):
            g = self._diff[tops[k]]
        else:       # an anonymous loss top: its diff is its loss weight
            g = torch.full_like(v, core._loss_weights[li][k])
        tensors.append(v)
        grads.append(g.reshape(v.shape))
    wanted = [x for bi, x in enumerate(inputs) if x.requires_grad and need.bottom[li][bi]
              and core._propagate[li][bi]]
    params = [p for p, learns in zip(layer.blobs, need.param[li]) if learns]
    if not tensors or not (wanted or params):
        return
    with user_errors():
        got = torch.autograd.grad(tensors, wanted + params, grads, allow_unused=True,
                                  retain_graph=True)
    for p, g in zip(params, got[len(wanted):]):
        if g is not None:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad.data.add_(g)
    for x, g in zip(wanted, got[:len(wanted)]):
        b = bottoms[next(i for i, y in enumerate(inputs) if y is x)]
        g = torch.zeros_like(x) if g is None else g
        # A blob several layers read gets their gradients summed (Caffe's Split layer);
        # an in-place layer replaces its top's diff with its bottom's.
        if b in written and b not in tops:
            self._diff[b].data.add_(g)
        else:
            self._diff[b].data.copy_(g)
        written.add(b)


def backward(self, diffs=None, start=None, end=None, **kwargs):
    """pycaffe's Net.backward: set top diffs given as keywords, back-propagate layers start..end
    (names, from the top), return {blob: diff} for the net's inputs (or the end layer's bottoms)
    plus ``diffs``."""
    diffs = list(diffs or [])
    i0, i1 = _layer_range(self, start, end, len(self._core.layers) - 1, 0)
    outputs = set((self.bottom_names[end] if end is not None else self.inputs) + diffs)
    for name, value in kwargs.items():
        if name not in self.outputs:
            raise CaffeError(f"backward: '{name}' is not an output blob "
                             f"(outputs: {self.outputs})")
        self.blobs[name].diff[...] = value
    self._push_host()
    written = set()
    # Nothing recorded on a TEST net without force_backward.
    if self._core.records_backward:
        need = NeedBackward(self._core)
        for li in range(i0, i1 - 1, -1):
            _backward_layer(self, li, written, need)
    return {name: self.blobs[name].diff for name in outputs}


def reshape(self):
    """Caffe's Net::Reshape: every layer's tops follow its bottoms' shapes (a forward without
    keeping results would do; a forward is what our layers offer)."""
    with torch.no_grad():
        for li in range(len(self._core.layers)):
            self._reshape_layer(li)


def _reshape_layer(self, li):
    _forward_layer(self, li, False)


def clear_param_diffs(self):
    """Caffe's Net::ClearParamDiffs: zero every parameter diff in place."""
    for p in self._core.parameters():
        if p.grad is not None:
            p.grad.data.zero_()


def _batches(net, blobs, kwargs):
    """(inputs of one batch, padding) over the given arrays, the last batch zero-padded to the
    net's batch size; one batch of nothing when no arrays are given (the net's own data)."""
    names = list(kwargs)
    if not names:
        yield {}, 0
        return
    n = net.blobs[names[0]].shape[0]
    total = len(kwargs[names[0]])
    for i in range(0, total, n):
        chunk = {k: np.asarray(v[i:i + n]) for k, v in kwargs.items()}
        pad = n - len(next(iter(chunk.values())))
        if pad:
            chunk = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
                     for k, v in chunk.items()}
        yield chunk, pad


def forward_all(self, blobs=None, **kwargs):
    """pycaffe's forward_all: run the inputs in batches; {blob: stacked data} with the padding
    of the last batch cut off."""
    all_outs = collections.defaultdict(list)
    pad = 0
    for chunk, pad in _batches(self, blobs, kwargs):
        for k, v in self.forward(blobs=blobs, **chunk).items():
            all_outs[k].extend(v.copy())
    return {k: np.asarray(v[:len(v) - pad]) for k, v in all_outs.items()}


def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
    """pycaffe's forward_backward_all: forward inputs and backward output diffs in batches."""
    fwd = {k: v for k, v in kwargs.items() if k in self.inputs}
    bwd = {k: v for k, v in kwargs.items() if k in self.outputs}
    all_outs, all_diffs = collections.defaultdict(list), collections.defaultdict(list)
    fwd_batches = list(_batches(self, blobs, fwd))
    bwd_batches = list(_batches(self, diffs, bwd)) if bwd else [({}, 0)] * len(fwd_batches)
    pad = 0
    for (fb, pad), (bb, _) in zip(fwd_batches, bwd_batches):
        for k, v in self.forward(blobs=blobs, **fb).items():
            all_outs[k].extend(v.copy())
        for k, v in self.backward(diffs=diffs, **bb).items():
            all_diffs[k].extend(v.copy())
    cut = lambda d: {k: np.asarray(v[:len(v) - pad]) for k, v in d.items()}  # noqa: E731
    return cut(all_outs), cut(all_diffs)


def set_input_arrays(self, data, labels):
    """pycaffe's set_input_arrays for a MemoryData first layer: the arrays it serves."""
    layer = self._core.layers[0]
    if layer.type_name != "MemoryData":
        raise CaffeError("set_input_arrays: the net's first layer is not a MemoryData layer")
    if data.shape[0] != labels.shape[0]:
        raise ValueError(f"set_input_arrays: {data.shape[0]} data items, {labels.shape[0]} labels")
    layer.set_input_arrays(np.ascontiguousarray(data, np.float32),
                           np.ascontiguousarray(labels, np.float32))
