"""Concat along ``concat_param { axis }`` (default 1) or the legacy ``concat_dim``."""
import torch

from ._params import canonical_axis, scalar
from .base import Layer, register


@register("Concat")
class ConcatLayer(Layer):
    """Bottoms that agree on every axis but ``axis`` -> their concatenation."""
    min_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("concat_param")
        if p.has("axis") and p.has("concat_dim"):
            raise self.error("Concat takes either axis or concat_dim, not both")
        self.axis = scalar(p, "concat_dim") if p.has("concat_dim") else scalar(p, "axis", 1)

    def _top_shape(self, shapes):
        first = shapes[0]
        axis = canonical_axis(self, self.axis, len(first))
        total = 0
        for i, s in enumerate(shapes):
            if len(s) != len(first) or any(a != b for j, (a, b) in enumerate(zip(s, first))
                                           if j != axis):
                raise self.error(f"Concat bottom {i} has shape {s}, which does not match bottom "
                                 f"0's {first} outside axis {axis}")
            total += s[axis]
        return first[:axis] + (total,) + first[axis + 1:], axis

    def layer_setup(self, bottom_shapes):
        return [self._top_shape([tuple(s) for s in bottom_shapes])[0]]

    def forward(self, *xs):
        _, axis = self._top_shape([tuple(x.shape) for x in xs])
        if len(xs) == 1:
            return (xs[0],)
        return (torch.cat(xs, dim=axis),)
