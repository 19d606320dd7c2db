"""Dropout with Caffe's inverted scaling: TRAIN keeps each value with probability 1 - ratio and
scales it by 1 / (1 - ratio); TEST is the identity.  The mode is ``self.training``: the layer
starts in the mode of its phase and follows the Net's ``train()`` / ``eval()``."""
import torch

from ._params import scalar
from .base import Layer, register


@register("Dropout")
class DropoutLayer(Layer):
    """Any shape, top has the bottom's shape."""
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.dropout_ratio = float(scalar(self.param("dropout_param"), "dropout_ratio", 0.5))
        if not 0.0 <= self.dropout_ratio < 1.0:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.dropout_ratio}")
        self.train(phase == "TRAIN")

    def layer_setup(self, bottom_shapes):
        return [tuple(bottom_shapes[0])]

    def forward(self, x):
        if not self.training or self.dropout_ratio == 0.0:
            return (x,)
        keep = torch.rand_like(x) >= self.dropout_ratio
        scale = 1.0 / (1.0 - self.dropout_ratio)
        return (x * keep.to(x.dtype) * scale,)
