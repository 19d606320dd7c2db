"""Eltwise: element-wise SUM (with per-bottom ``coeff``), PROD or MAX of two or more bottoms.

MAX follows Caffe's tie rule: between bottoms 0 and 1 a tie goes to bottom 1, for later bottoms
a tie keeps the earlier winner (only a strictly greater value takes over); the gradient goes to
the winner only.  PROD's gradient is the product of the other bottoms (``stable_prod_grad``).
"""
import torch

from ._params import enum_name
from .base import Layer, register

OPERATIONS = ["PROD", "SUM", "MAX"]


@register("Eltwise")
class EltwiseLayer(Layer):
    """K >= 2 bottoms of one shape -> one top of that shape."""
    min_num_bottom = 2
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("eltwise_param")
        self.operation = enum_name(self, p, "operation", "SUM", OPERATIONS)
        self.coeff = [float(c) for c in p.getlist("coeff")]
        # Caffe rejects coefficients for PROD only; MAX accepts and ignores them.
        if self.coeff and self.operation == "PROD":
            raise self.error("Eltwise takes coefficients only for SUM (MAX ignores them), not "
                             "for PROD")

    def layer_setup(self, bottom_shapes):
        if self.coeff and len(self.coeff) != len(bottom_shapes):
            raise self.error(f"Eltwise needs one coeff per bottom: {len(self.coeff)} coeff for "
                             f"{len(bottom_shapes)} bottoms")
        self._check_shapes([tuple(s) for s in bottom_shapes])
        return [tuple(bottom_shapes[0])]

    def _check_shapes(self, shapes):
        for i, s in enumerate(shapes[1:], 1):
            if s != shapes[0]:
                raise self.error(f"Eltwise bottoms must have one shape: bottom 0 is {shapes[0]}, "
                                 f"bottom {i} ('{self._bottom_name(i)}') is {s}")

    def _bottom_name(self, i):
        return self.spec.bottom[i] if i < len(self.spec.bottom) else f"#{i}"

    def forward(self, *xs):
        self._check_shapes([tuple(x.shape) for x in xs])
        if self.operation == "SUM":
            coeff = self.coeff or [1.0] * len(xs)
            out = xs[0] if coeff[0] == 1.0 else xs[0] * coeff[0]
            for c, x in zip(coeff[1:], xs[1:]):
                out = out + (x if c == 1.0 else x * c)
            return (out,)
        if self.operation == "PROD":
            out = xs[0]
            for x in xs[1:]:
                out = out * x
            return (out,)
        out = torch.where(xs[0] > xs[1], xs[0], xs[1])
        for x in xs[2:]:
            out = torch.where(x > out, x, out)
        return (out,)
