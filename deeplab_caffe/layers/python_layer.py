"""Python: a layer written in Python, as pycaffe runs it (python_param { module layer
param_str }).

``module`` is imported from sys.path (PYTHONPATH, the working directory) and ``layer`` names a
class in it.  Any class with setup/reshape/forward/backward methods works (duck typing): users
write ``class L(caffe.Layer)``, and pycaffe's ``caffe.Layer`` is this module's ``Layer``.  The
instance gets ``param_str`` (a str), ``phase`` (Caffe's enum value: TRAIN 0, TEST 1, as
pycaffe's ``caffe.TRAIN``) and ``blobs`` (its blob vector) before ``setup``.

Each call receives lists of ``deeplab_caffe.blob.Blob`` objects (``.data``/``.diff`` writable
numpy arrays, ``.reshape(*shape)``, ``.shape``, ``.count``, ``.num`` ...).  As in Caffe: setup
then reshape while the net is built (the tops' shapes are what reshape leaves), reshape then
forward at every forward, and ``backward(top, propagate_down, bottom)`` in the backward (top
diffs filled, bottom diffs to fill), run through an autograd Function.

``self.blobs.add_blob(*shape)`` in setup gives the layer learnable blobs, as in Caffe: they are
Parameters of the layer's ``blobs`` (so the net's params, updated by the solver with the
prototxt's ``param {}`` specs, saved and loaded, shared), ``self.blobs[j].data`` is the
Parameter's memory and ``self.blobs[j].diff`` its ``grad``, which ``backward`` writes itself
(Caffe's layer owns its param diffs; what it writes is the gradient, nothing is added by us).
"""
import importlib

import torch

from ..blob import Blob, BlobVec
from ..errors import CaffeError
from .base import Layer as BaseLayer, register

TRAIN, TEST = 0, 1
PHASE_VALUES = {"TRAIN": TRAIN, "TEST": TEST}


class Layer:
    """What a Python layer subclasses (pycaffe's ``caffe.Layer``): setup and backward default
    to doing nothing, reshape and forward must be written."""

    def __init__(self, param=None):
        self.param = param

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        raise NotImplementedError(f"{type(self).__name__} must define reshape(bottom, top)")

    def forward(self, bottom, top):
        raise NotImplementedError(f"{type(self).__name__} must define forward(bottom, top)")

    def backward(self, top, propagate_down, bottom):
        pass


def _instantiate(cls, spec):
    if cls.__init__ is object.__init__:
        return cls()
    return cls(spec.message)


class _PythonFunction(torch.autograd.Function):
    """The layer as one autograd node over its bottoms and its learnable blobs: the blobs are
    inputs so that the backward runs when only they need it (Caffe's layer_need_backward); their
    gradients are what the Python backward writes into their diffs, so the node returns None
    for them."""

    @staticmethod
    def forward(ctx, layer, num_bottoms, *inputs):
        ctx.layer, ctx.num_bottoms = layer, num_bottoms
        return layer.run_forward(inputs[:num_bottoms])

    @staticmethod
    def backward(ctx, *top_grads):
        needs = ctx.needs_input_grad[2:2 + ctx.num_bottoms]
        grads = ctx.layer.run_backward(top_grads, needs)
        num_params = len(ctx.needs_input_grad) - 2 - ctx.num_bottoms
        return (None, None) + tuple(grads) + (None,) * num_params


@register("Python")
class PythonLayer(BaseLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        # Where the tops and learnable blobs go when the layer has no bottoms (moved by
        # ``net.to(device)``).
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)
        self._grad_devices = []

    def layer_setup(self, bottom_shapes):
        self.py = self._instantiate_class()
        p = self.param("python_param")
        self.py.param_str = p.get("param_str", "")
        self.py.phase = PHASE_VALUES[self.phase]
        self.py.blobs = BlobVec(self)
        self.bottom_blobs = [Blob.holding(shape=s) for s in bottom_shapes]
        self.top_blobs = [Blob.holding() for _ in range(self.num_top)]
        self._call("setup", self.bottom_blobs, self.top_blobs)
        self._call("reshape", self.bottom_blobs, self.top_blobs)
        return [b.shape for b in self.top_blobs]

    def _instantiate_class(self):
        p = self.param("python_param")
        module_name, class_name = p.get("module"), p.get("layer")
        if not module_name or not class_name:
            raise self.error("python_param needs both module and layer")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise self.error(f"python_param.module '{module_name}' cannot be imported ({e}); "
                             "is its folder on PYTHONPATH?") from None
        cls = getattr(module, class_name, None)
        if cls is None:
            raise self.error(f"python_param.layer: module '{module_name}' has no '{class_name}'")
        missing = [m for m in ("setup", "reshape", "forward") if not callable(getattr(cls, m,
                                                                                     None))]
        if missing:
            raise self.error(f"Python layer class {module_name}.{class_name} lacks "
                             f"{', '.join(missing)}")
        return _instantiate(cls, self.spec)

    def _call(self, method, *args):
        try:
            getattr(self.py, method)(*args)
        except CaffeError:
            raise
        except Exception as e:
            raise self.error(f"{type(self.py).__name__}.{method} raised "
                             f"{type(e).__name__}: {e}") from e
        finally:
            # What the layer wrote into host mirrors of device blobs goes back to the device.
            BlobVec(self).push()

    def run_forward(self, bottoms):
        self.bottom_blobs = [Blob.holding(b.detach().to("cpu", torch.float32).contiguous()
                                          .clone()) for b in bottoms]
        self._call("reshape", self.bottom_blobs, self.top_blobs)
        self._call("forward", self.bottom_blobs, self.top_blobs)
        return tuple(t.data_tensor.clone().to(self._device(bottoms)) for t in self.top_blobs)

    def run_backward(self, top_grads, needs):
        for t, g in zip(self.top_blobs, top_grads):
            t.diff_tensor = (torch.zeros(t.shape) if g is None
                             else g.detach().to("cpu", torch.float32).reshape(t.shape).clone())
        for b in self.bottom_blobs:
            b.diff_tensor = torch.zeros_like(b.data_tensor)
        self._call("backward", self.top_blobs, list(needs), self.bottom_blobs)
        return [b.diff_tensor.clone().to(g_device) if need else None
                for b, need, g_device in zip(self.bottom_blobs, needs, self._grad_devices)]

    def _device(self, bottoms):
        self._grad_devices = [b.device for b in bottoms]
        return bottoms[0].device if bottoms else self._device_anchor.device

    def forward(self, *bottoms):
        params = list(self.blobs)
        if torch.is_grad_enabled() and any(x.requires_grad for x in bottoms + tuple(params)):
            tops = _PythonFunction.apply(self, len(bottoms), *bottoms, *params)
        else:
            tops = self.run_forward(bottoms)
        return tuple(tops)
