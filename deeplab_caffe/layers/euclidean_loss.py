"""EuclideanLoss: sum((a - b)^2) / (2 N), N = the first axis of bottom 0; both bottoms get a
gradient (+ and -).  Top: the loss as a 0-axis scalar."""
from ._params import count
from .base import Layer, register


@register("EuclideanLoss")
class EuclideanLossLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1
    auto_top_blobs = True

    def _check(self, a, b):
        if count(a, 1) != count(b, 1) or a[:1] != b[:1]:
            raise self.error(f"EuclideanLoss inputs must have the same size: {a} vs {b}")

    def layer_setup(self, bottom_shapes):
        self._check(tuple(bottom_shapes[0]), tuple(bottom_shapes[1]))
        return [()]

    def forward(self, a, b):
        self._check(tuple(a.shape), tuple(b.shape))
        diff = a - b.reshape(a.shape)
        return ((diff * diff).sum() / (2.0 * a.shape[0]),)
