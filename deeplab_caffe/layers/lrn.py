"""LRN (local response normalization) with Caffe's two regions.

ACROSS_CHANNELS: scale = k + alpha / n * sum of x^2 over the n channels centred on c (zeros past
the ends), top = x * scale^-beta.
WITHIN_CHANNEL: Caffe composes square -> AVE pooling (n x n, pad (n-1)/2, stride 1) ->
power (1 + alpha * avg)^-beta -> product; so scale = 1 + alpha / n^2 * sum of x^2 over the n x n
neighbourhood, and ``k`` is not used.  local_size must be odd.  Defaults: local_size 5, alpha 1,
beta 0.75, k 1.
"""
import torch
import torch.nn.functional as F

from ._params import enum_name, require_4d, scalar
from .base import Layer, register

NORM_REGIONS = ["ACROSS_CHANNELS", "WITHIN_CHANNEL"]


@register("LRN")
class LRNLayer(Layer):
    """Bottom (N, C, H, W) -> top of the same shape."""
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("lrn_param")
        self.local_size = int(scalar(p, "local_size", 5))
        self.alpha = float(scalar(p, "alpha", 1.0))
        self.beta = float(scalar(p, "beta", 0.75))
        self.k = float(scalar(p, "k", 1.0))
        self.norm_region = enum_name(self, p, "norm_region", "ACROSS_CHANNELS", NORM_REGIONS)
        if self.local_size <= 0 or self.local_size % 2 == 0:
            raise self.error(f"LRN supports only odd local_size, got {self.local_size}")

    def layer_setup(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        require_4d(self, shape)
        return [shape]

    def forward(self, x):
        require_4d(self, tuple(x.shape), "input")
        n, pre = self.local_size, (self.local_size - 1) // 2
        sq = x * x
        if self.norm_region == "ACROSS_CHANNELS":
            padded = F.pad(sq, (0, 0, 0, 0, pre, n - 1 - pre))
            C = x.shape[1]
            total = padded[:, 0:C]
            for i in range(1, n):
                total = total + padded[:, i:i + C]
            scale = self.k + (self.alpha / n) * total
        else:
            # Stride 1 and pad (n-1)/2 keep every window inside the padded map: divisor n^2.
            avg = F.avg_pool2d(sq, n, 1, pre, count_include_pad=True)
            scale = 1.0 + self.alpha * avg
        return (x * torch.pow(scale, -self.beta),)
