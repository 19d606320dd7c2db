"""HingeLoss: scores (N, ...) with dim = count / N values per item, labels (N, ...) of one
integer each; ``hinge_loss_param { norm (L1) }`` (hinge_loss_layer.cpp).

t_nj = -1 for j = label_n, else +1; m_nj = max(0, 1 + t_nj x_nj); loss = sum m / N (L1) or
sum m^2 / N (L2).  At m = 0 the gradient is 0 (Caffe's sign(0) = 0).  Labels get none.
"""
import torch

from ._params import enum_name
from ._loss import BVLCLossLayer
from .base import register

# Norm's values start at 1 (L1 = 1).
NORMS = [None, "L1", "L2"]


@register("HingeLoss")
class HingeLossLayer(BVLCLossLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.norm = enum_name(self, self.param("hinge_loss_param"), "norm", "L1", NORMS)
        if self.norm is None:
            raise self.error("norm: enum value 0 is not one of L1, L2")

    def layer_setup(self, bottom_shapes):
        self.check_first_dims(bottom_shapes)
        return [()]

    def forward(self, x, label):
        self.check_first_dims([x.shape, label.shape])
        n = x.shape[0]
        flat = x.reshape(n, -1)
        if label.numel() != n:
            raise self.error(f"HingeLoss needs one label per item ({n}), got {label.numel()}")
        lab = self.int_labels(label, flat.shape[1])
        sign = torch.ones_like(flat).scatter_(1, lab[:, None], -1.0)
        margin = torch.relu(1 + sign * flat)
        loss = (margin if self.norm == "L1" else margin * margin).sum() / n
        return (self.no_gradient_to(loss, [label], "label inputs"),)
