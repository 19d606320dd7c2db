"""Padding (DeepLab v1 PADDING): pad with zeros or crop H and W at both ends.

``padding_param { pad_beg pad_end }`` (defaults 0) must have the same sign: positive values pad
with zeros, negative values crop.  Output H_out = H + pad_beg + pad_end (the same for W), e.g.
DeepLab's test net crops 529 -> 514 with pad_beg -7, pad_end -8.
"""
import torch.nn.functional as F

from ._params import require_4d, scalar
from .base import Layer, register


@register("Padding")
class PaddingLayer(Layer):
    """Bottom (N, C, H, W) -> top (N, C, H + pad_beg + pad_end, W + pad_beg + pad_end)."""
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("padding_param")
        self.pad_beg = scalar(p, "pad_beg", 0)
        self.pad_end = scalar(p, "pad_end", 0)
        if not ((self.pad_beg >= 0 and self.pad_end >= 0) or
                (self.pad_beg <= 0 and self.pad_end <= 0)):
            raise self.error(f"pad_beg and pad_end must have the same sign, got "
                             f"{self.pad_beg}, {self.pad_end}")

    def _top_shape(self, shape):
        require_4d(self, shape)
        N, C, H, W = shape
        d = self.pad_beg + self.pad_end
        if H + d <= 0 or W + d <= 0:
            raise self.error(f"padding {self.pad_beg}, {self.pad_end} leaves nothing of a "
                             f"{H}x{W} input")
        return (N, C, H + d, W + d)

    def layer_setup(self, bottom_shapes):
        return [self._top_shape(tuple(bottom_shapes[0]))]

    def forward(self, x):
        self._top_shape(tuple(x.shape))
        b, e = self.pad_beg, self.pad_end
        return (F.pad(x, (b, e, b, e)),)
