"""SigmoidCrossEntropyLoss: scores x and targets t of the same count
(sigmoid_cross_entropy_loss_layer.cpp, BVLC master):
loss = -sum [x (t - [x >= 0]) - log(1 + exp(x - 2 x [x >= 0]))] / normalizer, the stable form of
the cross-entropy of sigmoid(x) against t.  ``loss_param { ignore_label normalization }``:
positions whose target (as an int) is ignore_label add nothing and get no gradient; the
normalizer defaults to BATCH_SIZE here (N), VALID counts the non-ignored positions.
Gradient (sigmoid(x) - t) / normalizer; the targets get none.
"""
import torch

from ._loss import BVLCLossLayer, normalization_mode, normalizer
from ._params import count, scalar
from .base import register


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLossLayer(BVLCLossLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        lp = self.param("loss_param")
        self.ignore = int(scalar(lp, "ignore_label")) if lp.has("ignore_label") else None
        self.normalization = normalization_mode(self, "BATCH_SIZE")

    def _check(self, shapes):
        self.check_first_dims(shapes)
        if count(tuple(shapes[0])) != count(tuple(shapes[1])):
            raise self.error(f"inputs must have the same count: {tuple(shapes[0])} vs "
                             f"{tuple(shapes[1])}")

    def layer_setup(self, bottom_shapes):
        self._check(bottom_shapes)
        return [()]

    def forward(self, x, target):
        self._check([x.shape, target.shape])
        t = target.detach().reshape(x.shape)
        positive = (x >= 0).to(x.dtype)
        per = -(x * (t - positive) - torch.log1p(torch.exp(x - 2 * x * positive)))
        valid = torch.ones_like(t, dtype=torch.bool)
        if self.ignore is not None:
            valid = t.to(torch.int64) != self.ignore
            per = torch.where(valid, per, torch.zeros_like(per))
        outer = x.shape[0]
        norm = normalizer(self.normalization, outer, count(tuple(x.shape), 1),
                          valid.sum().to(x.dtype))
        return (self.no_gradient_to(per.sum() / norm, [target], "label inputs"),)
