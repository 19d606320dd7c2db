"""SPP (spatial pyramid pooling): ``spp_param { pyramid_height pool (MAX) }`` (spp_layer.cpp).

Level l (0 .. pyramid_height-1) pools the (N, C, H, W) bottom into 2^l x 2^l bins with Caffe's
Pooling layer: kernel = ceil(H / bins), stride = kernel, pad = (kernel * bins - H + 1) / 2 (same
for W); each level is flattened to (N, C * bins^2) and the levels are concatenated in order.
With pyramid_height 1 the top is the single pooling's (N, C, 1, 1) output.
"""
import math

import torch

from ..proto.message import Message
from ..proto.spec import LayerSpec
from ._params import enum_name, require_4d, required
from .base import Layer, register
from .pooling import POOL_METHODS, PoolingLayer


@register("SPP")
class SPPLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.height = int(required(self, "spp_param", "pyramid_height"))
        if self.height < 1:
            raise self.error(f"pyramid_height must be positive, got {self.height}")
        self.pool = enum_name(self, self.param("spp_param"), "pool", "MAX", POOL_METHODS)
        self.levels = torch.nn.ModuleList()
        self._size = None

    def _pooling(self, level, H, W):
        bins = 2 ** level
        fields = {"pool": self.pool}
        for axis, size in (("h", H), ("w", W)):
            kernel = math.ceil(size / bins)
            fields.update({f"kernel_{axis}": kernel, f"stride_{axis}": kernel,
                           f"pad_{axis}": (kernel * bins - size + 1) // 2})
        spec = LayerSpec(name=f"{self.name} level {level}", type="Pooling", top=["pool"],
                         message=Message("LayerParameter", {
                             "pooling_param": Message("PoolingParameter", fields)}),
                         where=self.spec.where, dialect=self.spec.dialect)
        layer = PoolingLayer(spec, self.phase)
        layer.train(self.training)
        return layer

    def _build(self, shape):
        """The pooling layers for a bottom of ``shape`` (remade when H or W change, as Caffe's
        Reshape does); returns the top shape."""
        require_4d(self, shape)
        N, C, H, W = shape
        if self._size != (H, W):
            self.levels = torch.nn.ModuleList(self._pooling(l, H, W) for l in range(self.height))
            self._size = (H, W)
            for layer in self.levels:
                layer.setup([shape])
        if self.height == 1:
            return (N, C, 1, 1)
        return (N, C * sum(4 ** l for l in range(self.height)))

    def layer_setup(self, bottom_shapes):
        return [self._build(tuple(bottom_shapes[0]))]

    def forward(self, x):
        shape = self._build(tuple(x.shape))
        outs = [layer(x)[0] for layer in self.levels]
        if self.height == 1:
            return (outs[0],)
        return (torch.cat([o.reshape(x.shape[0], -1) for o in outs], 1).reshape(shape),)
