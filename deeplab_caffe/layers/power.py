"""Power: top = (shift + scale * x) ^ power, with Caffe's special cases.

Forward: a constant (1 if power is 0, else shift ^ power) when power * scale is 0.  Backward as
Caffe's Backward_cpu: power * scale when constant or linear; for power 2 the linear form
2 * scale * (shift + scale * x); for shift 0, power * top / x (0/0 = NaN at x = 0, as Caffe);
otherwise power * scale * top / (shift + scale * x).
"""
import math

import torch

from ._neuron import NeuronLayer, caffe_backward
from ._params import scalar
from .base import register


def _c_pow(base, exponent):
    """C's pow: NaN (not a complex number) for a negative base and a fractional exponent."""
    try:
        return math.pow(base, exponent)
    except (ValueError, OverflowError):
        return float("nan") if base < 0 else float("inf")


@register("Power")
class PowerLayer(NeuronLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("power_param")
        self.power = float(scalar(p, "power", 1.0))
        self.scale = float(scalar(p, "scale", 1.0))
        self.shift = float(scalar(p, "shift", 0.0))
        self.diff_scale = self.power * self.scale

    def _base(self, x):
        x = x if self.scale == 1 else x * self.scale
        return x if self.shift == 0 else x + self.shift

    def _forward(self, x):
        if self.diff_scale == 0:
            value = 1.0 if self.power == 0 else _c_pow(self.shift, self.power)
            return torch.full_like(x, value)
        y = self._base(x)
        return y if self.power == 1 else torch.pow(y, self.power)

    def _backward(self, x, y, top_diff):
        if self.diff_scale == 0:
            return torch.zeros_like(x)
        if self.power == 1:
            d = torch.full_like(x, self.diff_scale)
        elif self.power == 2:
            d = x * (self.diff_scale * self.scale)
            if self.shift != 0:
                d = d + self.diff_scale * self.shift
        elif self.shift == 0:
            d = (y / x) * self.power
        else:
            d = y / self._base(x)
            if self.diff_scale != 1:
                d = d * self.diff_scale
        return top_diff * d

    def forward(self, x):
        return (caffe_backward(x, self._forward, self._backward),)
