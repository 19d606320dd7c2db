"""Python: a layer written in Python, as pycaffe runs it (python_param { module layer
param_str }).

``module`` is imported from sys.path (PYTHONPATH, the working directory) and ``layer`` names a
class in it.  Any class with setup/reshape/forward/backward methods works (duck typing): users
write ``class L(caffe.Layer)``, and the pycaffe drop-in (``import caffe``, a later issue) will
make ``caffe.Layer`` this module's ``Layer``.  The instance gets ``param_str`` (a str) and
``phase`` (Caffe's enum value: TRAIN 0, TEST 1, as pycaffe's ``caffe.TRAIN``) before ``setup``.

Each call receives lists of ``Blob`` objects: ``.data`` and ``.diff`` are writable numpy arrays
(views of CPU tensors), ``.reshape(*shape)``, ``.shape``, ``.count``, ``.num``, ``.channels``,
``.height``, ``.width``.  As in Caffe: setup then reshape while the net is built (the tops'
shapes are what reshape leaves), reshape then forward at every forward, and
``backward(top, propagate_down, bottom)`` in the backward (top diffs filled, bottom diffs to
fill), run through an autograd Function.  Learnable blobs of Python layers (``self.blobs``) are
not supported.
"""
import importlib

import numpy as np
import torch

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


class Blob:
    """pycaffe's Blob: data and diff as numpy arrays over CPU float32 tensors."""

    def __init__(self, data=None, shape=(0,)):
        self._data = data if data is not None else torch.zeros(shape, dtype=torch.float32)
        self._diff = torch.zeros_like(self._data)

    @property
    def data(self):
        return self._data.numpy()

    @data.setter
    def data(self, value):
        self.data[...] = value

    @property
    def diff(self):
        return self._diff.numpy()

    @diff.setter
    def diff(self, value):
        self.diff[...] = value

    def reshape(self, *shape):
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"Blob.reshape: negative dimension in {shape}")
        if shape != tuple(self._data.shape):
            self._data = torch.zeros(shape, dtype=torch.float32)
            self._diff = torch.zeros(shape, dtype=torch.float32)

    @property
    def shape(self):
        return tuple(self._data.shape)

    @property
    def count(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def _legacy(self, axis):
        # Caffe's LegacyShape: num/channels/height/width of a blob of at most 4 axes.
        shape = self.shape
        if len(shape) > 4:
            raise ValueError(f"num/channels/height/width need at most 4 axes, shape {shape}")
        index = axis + len(shape) - 4
        return shape[index] if index >= 0 else 1

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))


def _instantiate(cls, spec):
    if cls.__init__ is object.__init__:
        return cls()
    return cls(spec.message)


class _PythonFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, layer, *bottoms):
        tops = layer.run_forward(bottoms)
        ctx.layer = layer
        ctx.bottom_shapes = [b.shape for b in bottoms]
        return tops

    @staticmethod
    def backward(ctx, *top_grads):
        grads = ctx.layer.run_backward(top_grads, ctx.needs_input_grad[1:])
        return (None,) + tuple(grads)


@register("Python")
class PythonLayer(BaseLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        # Where the tops go when the layer has no bottoms (moved by ``net.to(device)``).
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)
        self._grad_devices = []

    def layer_setup(self, bottom_shapes):
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
        self.py = _instantiate(cls, self.spec)
        self.py.param_str = p.get("param_str", "")
        self.py.phase = PHASE_VALUES[self.phase]
        self.bottom_blobs = [Blob(shape=s) for s in bottom_shapes]
        self.top_blobs = [Blob() for _ in range(self.num_top)]
        self._call("setup", self.bottom_blobs, self.top_blobs)
        self._call("reshape", self.bottom_blobs, self.top_blobs)
        return [b.shape for b in self.top_blobs]

    def _call(self, method, *args):
        try:
            getattr(self.py, method)(*args)
        except CaffeError:
            raise
        except Exception as e:
            raise self.error(f"{type(self.py).__name__}.{method} raised "
                             f"{type(e).__name__}: {e}") from e

    def run_forward(self, bottoms):
        self.bottom_blobs = [Blob(b.detach().to("cpu", torch.float32).contiguous().clone())
                             for b in bottoms]
        self._call("reshape", self.bottom_blobs, self.top_blobs)
        self._call("forward", self.bottom_blobs, self.top_blobs)
        return tuple(t._data.clone().to(self._device(bottoms)) for t in self.top_blobs)

    def run_backward(self, top_grads, needs):
        for t, g in zip(self.top_blobs, top_grads):
            t._diff = (torch.zeros(t.shape) if g is None
                       else g.detach().to("cpu", torch.float32).reshape(t.shape).clone())
        for b in self.bottom_blobs:
            b._diff = torch.zeros_like(b._data)
        self._call("backward", self.top_blobs, list(needs), self.bottom_blobs)
        return [b._diff.clone().to(g_device) if need else None
                for b, need, g_device in zip(self.bottom_blobs, needs, self._grad_devices)]

    def _device(self, bottoms):
        self._grad_devices = [b.device for b in bottoms]
        return bottoms[0].device if bottoms else self._device_anchor.device

    def forward(self, *bottoms):
        if torch.is_grad_enabled() and any(b.requires_grad for b in bottoms):
            tops = _PythonFunction.apply(self, *bottoms)
        else:
            tops = self.run_forward(bottoms)
        return tuple(tops)
