"""InnerProduct (fully connected) with Caffe's blob layout.

Bottom (..., K...) is flattened from ``axis`` (default 1): M = count(0, axis) rows of
K = count(axis) values.  Blobs: weight (num_output, K), or (K, num_output) with ``transpose``;
bias (num_output,) when ``bias_term`` (default true).  Top shape = bottom.shape[:axis] +
(num_output,).  Missing fillers mean constant 0, as in Caffe.
"""

from ._params import canonical_axis, count, scalar
from .base import Layer, register


@register("InnerProduct")
class InnerProductLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.p = self.param("inner_product_param")
        if not p.has("num_output"):
            raise self.error("InnerProduct needs inner_product_param { num_output }")
        self.num_output = int(scalar(p, "num_output"))
        if self.num_output <= 0:
            raise self.error(f"num_output must be positive, got {self.num_output}")
        self.bias_term = bool(scalar(p, "bias_term", True))
        self.axis = scalar(p, "axis", 1)
        self.transpose = bool(scalar(p, "transpose", False))
        self.K = None

    def _k(self, shape):
        axis = canonical_axis(self, self.axis, len(shape))
        return axis, count(shape, axis)

    def layer_setup(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        axis, self.K = self._k(shape)
        if len(self.blobs) == 0:
            wshape = (self.K, self.num_output) if self.transpose else (self.num_output, self.K)
            self.blobs.append(self.filled_blob(wshape, self.p, "weight_filler"))
            if self.bias_term:
                self.blobs.append(self.filled_blob((self.num_output,), self.p, "bias_filler"))
        return [shape[:axis] + (self.num_output,)]

    def forward(self, x):
        axis, K = self._k(tuple(x.shape))
        if self.K is not None and K != self.K:
            raise self.error(f"input size {K} after axis {axis} does not match the weights' "
                             f"{self.K}")
        x2 = x.reshape(count(tuple(x.shape), 0, axis), K)
        w = self.blobs[0]
        y = x2 @ w if self.transpose else x2 @ w.t()
        if self.bias_term:
            y = y + self.blobs[1]
        return (y.reshape(tuple(x.shape[:axis]) + (self.num_output,)),)
