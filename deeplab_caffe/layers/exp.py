"""Exp: top = base ^ (shift + scale * x), base -1 meaning e.  As Caffe: inner_scale =
log(base) * scale, outer_scale = base ^ shift (1 when shift is 0), top = outer_scale *
exp(inner_scale * x); backward top_diff * top * inner_scale."""
import math

import torch

from ._neuron import NeuronLayer, caffe_backward
from ._params import scalar
from .base import register


@register("Exp")
class ExpLayer(NeuronLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("exp_param")
        base = float(scalar(p, "base", -1.0))
        scale = float(scalar(p, "scale", 1.0))
        shift = float(scalar(p, "shift", 0.0))
        if base != -1 and not base > 0:
            raise self.error(f"exp_param base must be strictly positive (or -1 for e), got "
                             f"{base}")
        log_base = 1.0 if base == -1 else math.log(base)
        self.inner_scale = log_base * scale
        self.outer_scale = 1.0 if shift == 0 else (
            math.exp(shift) if base == -1 else base ** shift)

    def forward(self, x):
        inner, outer = self.inner_scale, self.outer_scale

        def fwd(x):
            y = torch.exp(x if inner == 1 else x * inner)
            return y if outer == 1 else y * outer

        def bwd(x, y, top_diff):
            d = top_diff * y
            return d if inner == 1 else d * inner
        return (caffe_backward(x, fwd, bwd),)
