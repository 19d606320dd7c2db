"""Softmax over one axis (``softmax_param { axis }``, default 1; negative counts from the end)."""
import torch

from ._params import canonical_axis, scalar
from .base import Layer, register


@register("Softmax")
class SoftmaxLayer(Layer):
    """Any shape, e.g. (N, C, H, W) -> probabilities over C at each (n, h, w)."""
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.axis = scalar(self.param("softmax_param"), "axis", 1)

    def layer_setup(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        canonical_axis(self, self.axis, len(shape))
        return [shape]

    def forward(self, x):
        return (torch.softmax(x, dim=canonical_axis(self, self.axis, x.dim())),)
