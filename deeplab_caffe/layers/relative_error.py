"""RelativeError (DeepLab v1 RELATIVE_ERROR): ||a - b|| / ||b|| over the whole batch.

Bottoms a, b of the same (N, C, H, W); top (1, 1, 1, 1) = sqrt(sum((a - b)^2 / n) /
max(sum(b^2 / n), 1e-6)) with n the element count: the C++ scales both by 1/sqrt(n) before the
dot products, so the floor 1e-6 applies to the mean square of b.  Not a loss (no automatic top,
loss weight 0).  No backward: one that reaches a bottom is an error (Caffe's NOT_IMPLEMENTED).
"""
import math

import torch

from ._grad import refuse_backward
from ._params import require_4d
from .base import Layer, register


@register("RelativeError")
class RelativeErrorLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def _check(self, s0, s1):
        require_4d(self, s0, "bottom 0")
        require_4d(self, s1, "bottom 1")
        if s0 != s1:
            raise self.error(f"bottoms must have the same shape, got {s0} and {s1}")

    def layer_setup(self, bottom_shapes):
        self._check(tuple(bottom_shapes[0]), tuple(bottom_shapes[1]))
        return [(1, 1, 1, 1)]

    def forward(self, a, b):
        self._check(tuple(a.shape), tuple(b.shape))
        with torch.no_grad():
            alpha = 1 / math.sqrt(a.numel())
            d = (a - b) * alpha
            nom = (d * d).sum()
            bs = b * alpha
            denom = torch.clamp((bs * bs).sum(), min=1e-6)
            out = torch.sqrt(nom / denom).reshape(1, 1, 1, 1)
        return (refuse_backward(self, out, [a, b], "backward is not implemented (Caffe's "
                                "NOT_IMPLEMENTED); RelativeError cannot be used as a loss"),)
