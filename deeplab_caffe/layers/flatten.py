"""Flatten axes ``axis`` .. ``end_axis`` (defaults 1 and -1) into one, e.g. (N, C, H, W) ->
(N, C*H*W)."""
from ._params import canonical_axis, count, scalar
from .base import Layer, register


@register("Flatten")
class FlattenLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("flatten_param")
        self.axis = scalar(p, "axis", 1)
        self.end_axis = scalar(p, "end_axis", -1)

    def _top_shape(self, shape):
        a = canonical_axis(self, self.axis, len(shape))
        e = canonical_axis(self, self.end_axis, len(shape), "end_axis")
        if e < a:
            raise self.error(f"end_axis {self.end_axis} comes before axis {self.axis}")
        return shape[:a] + (count(shape, a, e + 1),) + shape[e + 1:]

    def layer_setup(self, bottom_shapes):
        return [self._top_shape(tuple(bottom_shapes[0]))]

    def forward(self, x):
        return (x.reshape(self._top_shape(tuple(x.shape))),)
