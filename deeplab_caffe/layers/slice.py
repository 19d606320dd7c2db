"""Slice one bottom along ``slice_param { axis }`` (default 1; legacy ``slice_dim``) at the
``slice_point``s, or into equal parts when none are given."""
from ._params import canonical_axis, scalar
from .base import Layer, register


@register("Slice")
class SliceLayer(Layer):
    """One bottom -> K tops, the pieces along ``axis``."""
    exact_num_bottom = 1
    min_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("slice_param")
        if p.has("axis") and p.has("slice_dim"):
            raise self.error("Slice takes either axis or slice_dim, not both")
        self.axis = scalar(p, "slice_dim") if p.has("slice_dim") else scalar(p, "axis", 1)
        self.slice_point = [int(v) for v in p.getlist("slice_point")]

    def _sizes(self, shape, num_top):
        axis = canonical_axis(self, self.axis, len(shape))
        dim = shape[axis]
        if self.slice_point:
            if len(self.slice_point) != num_top - 1:
                raise self.error(f"Slice with {num_top} tops needs {num_top - 1} slice_point "
                                 f"values, got {len(self.slice_point)}")
            bounds = [0] + self.slice_point + [dim]
            sizes = [b - a for a, b in zip(bounds, bounds[1:])]
            if any(s <= 0 for s in sizes):
                raise self.error(f"slice_point {self.slice_point} must increase strictly inside "
                                 f"(0, {dim}) on axis {axis}")
        else:
            if dim % num_top:
                raise self.error(f"cannot slice axis {axis} of size {dim} into {num_top} equal "
                                 f"parts")
            sizes = [dim // num_top] * num_top
        return axis, sizes

    def layer_setup(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        axis, sizes = self._sizes(shape, len(self.spec.top))
        return [shape[:axis] + (s,) + shape[axis + 1:] for s in sizes]

    def forward(self, x):
        axis, sizes = self._sizes(tuple(x.shape), len(self.spec.top))
        return tuple(x.split(sizes, dim=axis))
