"""MVN (mean-variance normalization) per (num, channel) row, or per num with
``across_channels``: top = (x - mean) / (sqrt(var) + eps), eps added after the square root as
Caffe does (var the biased variance); without ``normalize_variance`` top = x - mean.

Caffe's backward is the eps-free closed form divided by (sqrt(var) + eps):
(dy - mean(dy) - mean(dy * y) * y) / (sqrt(var) + eps), and dy - mean(dy) without variance.
Rows come from the legacy num()/channels() accessors, so at most 4 axes.
"""
import torch

from ._neuron import NeuronLayer, caffe_backward
from ._params import scalar
from .base import register


@register("MVN")
class MVNLayer(NeuronLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("mvn_param")
        self.normalize_variance = bool(scalar(p, "normalize_variance", True))
        self.across_channels = bool(scalar(p, "across_channels", False))
        self.eps = float(scalar(p, "eps", 1e-9))

    def layer_setup(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) > 4:
            raise self.error(f"MVN reads num and channels with Caffe's legacy accessors, which "
                             f"take at most 4 axes; got shape {shape}")
        return [shape]

    def _rows(self, x):
        num = x.shape[0] if x.dim() else 1
        if not self.across_channels:
            num *= x.shape[1] if x.dim() > 1 else 1
        return x.reshape(num, -1)

    def _std(self, centred):
        return centred.pow(2).mean(dim=1, keepdim=True).sqrt() + self.eps

    def _forward(self, x):
        rows = self._rows(x)
        centred = rows - rows.mean(dim=1, keepdim=True)
        if self.normalize_variance:
            centred = centred / self._std(centred)
        return centred.reshape(x.shape)

    def _backward(self, x, y, top_diff):
        dy = self._rows(top_diff)
        d = dy - dy.mean(dim=1, keepdim=True)
        if self.normalize_variance:
            rows = self._rows(x)
            yr = self._rows(y)
            d = d - (dy * yr).mean(dim=1, keepdim=True) * yr
            d = d / self._std(rows - rows.mean(dim=1, keepdim=True))
        return d.reshape(x.shape)

    def forward(self, x):
        return (caffe_backward(x, self._forward, self._backward),)
