"""ReLU with Caffe's ``negative_slope`` (leaky ReLU); the gradient at exactly 0 is the slope."""
import torch
import torch.nn.functional as F

from ._params import scalar
from .base import Layer, register


@register("ReLU")
class ReLULayer(Layer):
    """Any shape: top = max(x, 0) + negative_slope * min(x, 0)."""
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.negative_slope = float(scalar(self.param("relu_param"), "negative_slope", 0.0))

    def layer_setup(self, bottom_shapes):
        return [tuple(bottom_shapes[0])]

    def forward(self, x):
        if self.negative_slope == 0.0:
            return (F.relu(x),)
        # Caffe's backward uses (x > 0) + slope * (x <= 0); where() routes it the same way.
        return (torch.where(x > 0, x, x * self.negative_slope),)
