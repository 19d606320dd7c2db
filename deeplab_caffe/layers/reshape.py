"""Reshape: ``reshape_param { shape { dim } axis (0) num_axes (-1) }`` (reshape_layer.cpp).

The axes [axis, axis + num_axes) of the bottom (num_axes -1: to the end; a negative axis counts
from the end, -1 = after the last) are replaced by ``shape``: a dim 0 copies the bottom's dim at
the same place, one dim -1 is inferred from the count.  The data is shared, the count kept.
"""
import math

from ._params import scalar
from .base import Layer, register


@register("Reshape")
class ReshapeLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("reshape_param")
        shape = p.get("shape")
        self.dims = [int(d) for d in shape.getlist("dim")] if shape is not None else []
        self.axis = int(scalar(p, "axis", 0))
        self.num_axes = int(scalar(p, "num_axes", -1))
        if self.num_axes < -1:
            raise self.error(f"num_axes must be >= 0, or -1 for all; got {self.num_axes}")
        if sum(d == -1 for d in self.dims) > 1:
            raise self.error(f"shape {self.dims} has more than one -1 (inferred) dim")
        bad = [d for d in self.dims if d < -1]
        if bad:
            raise self.error(f"shape dim {bad[0]} is invalid (>= 0, or -1 to infer)")

    def _top_shape(self, s):
        n = len(s)
        start = self.axis if self.axis >= 0 else n + self.axis + 1
        if not 0 <= start <= n:
            raise self.error(f"axis {self.axis} out of range for a {n}-axis bottom")
        end = n if self.num_axes == -1 else start + self.num_axes
        if end > n:
            raise self.error(f"axis {self.axis} + num_axes {self.num_axes} exceeds the "
                             f"{n}-axis bottom")
        new = []
        for i, d in enumerate(self.dims):
            if d == 0:
                if start + i >= n:
                    raise self.error(f"shape dim #{i} is 0 (copy) but the bottom has no axis "
                                     f"{start + i}")
                d = s[start + i]
            new.append(d)
        top = list(s[:start]) + new + list(s[end:])
        total = math.prod(s)
        if -1 in new:
            known = math.prod(d for d in top if d != -1)
            if known == 0 or total % known:
                raise self.error(f"cannot infer the -1 dim of {tuple(top)} from bottom "
                                 f"{tuple(s)}")
            top[top.index(-1)] = total // known
        if math.prod(top) != total:
            raise self.error(f"top shape {tuple(top)} has {math.prod(top)} values, bottom "
                             f"{tuple(s)} {total}")
        return tuple(top)

    def layer_setup(self, bottom_shapes):
        return [self._top_shape(tuple(bottom_shapes[0]))]

    def forward(self, x):
        return (x.reshape(self._top_shape(tuple(x.shape))),)
