"""MultinomialLogisticLoss: probabilities (N, dim...) and labels (N, 1, 1, 1):
loss = -sum_n log(max(p_n,label, 1e-20)) / N (multinomial_logistic_loss_layer.cpp).

The backward is Caffe's: -1 / (N max(p, 1e-20)) at the label, 0 elsewhere, so a probability
below the threshold still gets a (huge) gradient.  Labels get none.
"""
import torch

from ._loss import BVLCLossLayer
from .base import register

LOG_THRESHOLD = 1e-20   # Caffe's kLOG_THRESHOLD


def clamped_log(p):
    """log(max(p, 1e-20)) whose gradient is 1 / max(p, 1e-20) everywhere (Caffe's backward)."""
    floor = torch.clamp(p.detach(), min=LOG_THRESHOLD)
    return torch.log(floor) + (p - p.detach()) / floor


@register("MultinomialLogisticLoss")
class MultinomialLogisticLossLayer(BVLCLossLayer):
    def _check(self, shapes):
        self.check_first_dims(shapes)
        if any(d != 1 for d in tuple(shapes[1])[1:]):
            raise self.error(f"labels must be (N, 1, 1, 1), got {tuple(shapes[1])}")

    def layer_setup(self, bottom_shapes):
        self._check(bottom_shapes)
        return [()]

    def forward(self, prob, label):
        self._check([prob.shape, label.shape])
        n = prob.shape[0]
        flat = prob.reshape(n, -1)
        lab = self.int_labels(label, flat.shape[1])
        loss = -clamped_log(flat.gather(1, lab[:, None])).sum() / n
        return (self.no_gradient_to(loss, [label], "label inputs"),)
