"""Log: top = log_base(shift + scale * x), base -1 meaning e.  As Caffe: top = ln(scale * x +
shift) * (1 / ln(base)); backward top_diff * (scale / ln(base)) / (scale * x + shift)."""
import math

import torch

from ._neuron import NeuronLayer, caffe_backward
from ._params import scalar
from .base import register


@register("Log")
class LogLayer(NeuronLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("log_param")
        base = float(scalar(p, "base", -1.0))
        self.scale = float(scalar(p, "scale", 1.0))
        self.shift = float(scalar(p, "shift", 0.0))
        if base != -1 and not base > 0:
            raise self.error(f"log_param base must be strictly positive (or -1 for e), got "
                             f"{base}")
        log_base = 1.0 if base == -1 else math.log(base)
        if log_base == 0:
            raise self.error(f"log_param base {base}: 1 / log(base) is infinite")
        self.base_scale = 1.0 / log_base
        self.backward_num_scale = self.scale / log_base

    def _input(self, x):
        x = x if self.scale == 1 else x * self.scale
        return x if self.shift == 0 else x + self.shift

    def forward(self, x):
        def fwd(x):
            y = torch.log(self._input(x))
            return y if self.base_scale == 1 else y * self.base_scale

        def bwd(x, y, top_diff):
            d = 1.0 / self._input(x)
            if self.backward_num_scale != 1:
                d = d * self.backward_num_scale
            return top_diff * d
        return (caffe_backward(x, fwd, bwd),)
