"""pycaffe's Net over our Net: blobs with persistent memory that forward and backward read and
write layer by layer (Caffe's Net::ForwardFromTo / BackwardFromTo), so that
``net.blobs['data'].data[...] = x; net.forward()`` feeds the net and ``blob.diff[...] = g;
net.backward(start=...)`` back-propagates g.

The layers are our Net's; only the blob memory is this module's.  A forward that records
(TRAIN phase or force_backward) keeps each layer's autograd graph (its bottoms as leaves) so that
the backward runs layer by layer from the top diffs; parameter gradients accumulate in
``Parameter.grad`` as Caffe's param diffs do until ``clear_param_diffs``.
"""
import collections
import contextlib

import torch

from .. import mode
from ..errors import CaffeError, NetError
from ..net import Net as _CoreNet
from ..blob import Blob, BlobVec, Slot
from ..layers.python_layer import Layer  # noqa: F401  (pycaffe's caffe.Layer is ours)
from .net_io import NetIOMixin

TRAIN, TEST = 0, 1
_PHASE_NAMES = {TRAIN: "TRAIN", TEST: "TEST", "TRAIN": "TRAIN", "TEST": "TEST"}


@contextlib.contextmanager
def user_errors():
    """pycaffe surfaces an exception raised by a Python layer's own code as itself (Caffe's
    PythonLayer re-raises it), where our net wraps it in a NetError naming the layer."""
    try:
        yield
    except NetError as e:
        cause = e.__cause__
        if cause is not None and not isinstance(cause, CaffeError):
            raise cause.with_traceback(cause.__traceback__) from None
        raise


class LayerView:
    """A layer as pycaffe's ``net.layers[i]`` shows it: ``.type``, ``.blobs``, ``.reshape()``."""

    def __init__(self, net, index):
        self._net, self._index = net, index

    @property
    def _layer(self):
        return self._net._core.layers[self._index]

    @property
    def type(self):
        return self._layer.type_name

    @property
    def blobs(self):
        return BlobVec(self._layer)

    def reshape(self):
        self._net._reshape_layer(self._index)

    def setup(self):
        pass


class Net(NetIOMixin):
    """pycaffe's Net.  Call forms: ``Net(model, phase)``, ``Net(model, weights, phase)``,
    ``Net(model, phase, level=0, stages=None, weights=None)``; ``model`` may also be one of our
    Nets (the solver's)."""

    def __init__(self, model, *args, level=0, stages=None, weights=None, core=None):
        if len(args) == 2:
            weights, phase = args
        elif len(args) == 1:
            phase = args[0]
        else:
            raise TypeError("Net(model, [weights,] phase, level=0, stages=None, weights=None): "
                            f"got {len(args)} positional arguments after the model")
        if phase not in _PHASE_NAMES:
            raise ValueError(f"Net: phase must be caffe.TRAIN or caffe.TEST, got {phase!r}")
        if core is None:
            with user_errors():
                core = _CoreNet(str(model), phase=_PHASE_NAMES[phase], level=level,
                                stages=tuple(stages or ()), device=mode.resolve_device())
        self._core = core
        self._data, self._diff, self._graphs = {}, {}, {}
        self._imported = {}
        dev = core.device
        for name, shape in core.blob_shapes.items():
            self._data[name] = torch.zeros(shape, device=dev)
            self._diff[name] = torch.zeros(shape, device=dev)
        self._alias_constant_tops()
        # Caffe's SetLossWeights: a loss top's diff holds its loss weight.
        for tops, weights_ in zip(core._tops, core._loss_weights):
            for t, w in zip(tops, weights_):
                if w:
                    self._diff[t].fill_(w)
        self._blob_views = collections.OrderedDict(
            (name, Blob(Slot(self._data_getter(name), self._setter(self._data, name)),
                        Slot(lambda n=name: self._diff[n], self._setter(self._diff, name))))
            for name in core.blob_shapes)
        if weights is not None:
            self.copy_from(weights)

    # -- blob memory -------------------------------------------------------------------------
    def _alias_constant_tops(self):
        """A DummyData top with a constant filler is filled once (Caffe's refill_ false): its
        blob is the layer's own buffer, so what a script writes there feeds every later forward,
        the solver's included, as in Caffe."""
        for layer, tops in zip(self._core.layers, self._core._tops):
            if layer.type_name != "DummyData":
                continue
            for i, t in enumerate(tops):
                if not layer.refill[layer._filler_index(i)]:
                    self._data[t] = layer._top_buffer(i)

    def _data_getter(self, name):
        def get():
            # A forward of the wrapped net itself (the solver's step) leaves its results in
            # its own blobs: take them in the first time they are looked at.
            t = self._core.blobs.get(name) if self._core.blobs else None
            if t is not None and t is not self._imported.get(name):
                self._imported[name] = t
                self._store(name, t.detach())
            return self._data[name]
        return get

    @staticmethod
    def _setter(store, name):
        def set_(t):
            store[name] = t
        return set_

    def _store(self, name, value):
        t = self._data[name]
        if tuple(t.shape) == tuple(value.shape):
            # .data: no autograd version bump, so graphs holding this memory stay valid.
            t.data.copy_(value)
        else:
            self._data[name] = value.detach().clone()
            self._diff[name] = torch.zeros_like(self._data[name])

    def _push_host(self):
        for b in self._blob_views.values():
            b.push()
        for layer in self._core.layers:
            BlobVec(layer).push()

    # -- pycaffe's accessors -----------------------------------------------------------------
    @property
    def blobs(self):
        for name in self._blob_views:
            self._blob_views[name]._data.get()      # take in a wrapped net's forward results
        return collections.OrderedDict(self._blob_views)

    @property
    def params(self):
        out = collections.OrderedDict()
        for name, layer in zip(self._core.layer_names, self._core.layers):
            if len(layer.blobs):
                out[name] = list(BlobVec(layer))
        return out

    @property
    def layers(self):
        return [LayerView(self, i) for i in range(len(self._core.layers))]

    @property
    def layer_dict(self):
        return collections.OrderedDict(zip(self._core.layer_names, self.layers))

    _layer_names = property(lambda self: list(self._core.layer_names))
    _blob_names = property(lambda self: list(self._core.blob_shapes))
    inputs = property(lambda self: list(self._core.inputs))
    outputs = property(lambda self: list(self._core.outputs))
    name = property(lambda self: self._core.name)

    @property
    def top_names(self):
        return collections.OrderedDict(zip(self._core.layer_names, map(list, self._core._tops)))

    @property
    def bottom_names(self):
        return collections.OrderedDict(zip(self._core.layer_names,
                                           map(list, self._core._bottoms)))

    @property
    def blob_loss_weights(self):
        weights = collections.OrderedDict((name, 0.0) for name in self._core.blob_shapes)
        for tops, ws in zip(self._core._tops, self._core._loss_weights):
            for t, w in zip(tops, ws):
                weights[t] = w
        return weights

    def _layer_index(self, name, what):
        if name not in self._core.layer_names:
            raise CaffeError(f"{what}: net '{self.name}' has no layer '{name}'")
        return self._core.layer_names.index(name)

    from .net_run import (forward, backward, reshape, _reshape_layer,  # noqa: E402
                          _forward_layer, _backward_layer, forward_all,
                          forward_backward_all, set_input_arrays, clear_param_diffs)
