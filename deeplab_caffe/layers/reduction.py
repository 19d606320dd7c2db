"""Reduction: ``reduction_param { operation (SUM) axis (0) coeff (1) }``: every axis from
``axis`` on reduced to one number, times coeff; top = the bottom's shape before ``axis`` (a
scalar for axis 0).  SUM, ASUM (sum |x|, gradient sign(x) with sign(0) = 0), SUMSQ, MEAN
(sum / the reduced count)."""
from ._params import canonical_axis, count, enum_name, scalar
from .base import Layer, register

# ReductionOp's values start at 1 (SUM = 1); index 0 is not a valid value.
OPERATIONS = [None, "SUM", "ASUM", "SUMSQ", "MEAN"]


@register("Reduction")
class ReductionLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("reduction_param")
        self.op = enum_name(self, p, "operation", "SUM", OPERATIONS)
        if self.op is None:
            raise self.error("operation: enum value 0 is not one of SUM, ASUM, SUMSQ, MEAN")
        self.axis = int(scalar(p, "axis", 0))
        self.coeff = float(scalar(p, "coeff", 1.0))

    def layer_setup(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        return [s[:canonical_axis(self, self.axis, len(s))]]

    def forward(self, x):
        a = canonical_axis(self, self.axis, x.dim())
        flat = x.reshape(tuple(x.shape[:a]) + (-1,))
        if self.op == "ASUM":
            flat = flat.abs()
        elif self.op == "SUMSQ":
            flat = flat * flat
        y = flat.sum(-1)
        if self.op == "MEAN":
            y = y / max(count(tuple(x.shape), a), 1)
        return (y * self.coeff if self.coeff != 1.0 else y,)
