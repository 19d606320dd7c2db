"""ContrastiveLoss: bottoms a, b (N, C, 1, 1) and y (N, 1, 1, 1);
``contrastive_loss_param { margin (1.0) legacy_version (false) }`` (contrastive_loss_layer.cpp).

d^2 = ||a_n - b_n||^2; loss = sum_n [y_n d^2 + (1 - y_n) max(margin - d, 0)^2] / (2N), with
max(margin - d^2, 0) in the legacy version; y_n is "similar" when int(y_n) != 0.  The backward is
Caffe's, not the exact derivative: for a dissimilar pair it scales (a - b) by
-(margin - d) / (d + 1e-4) (not / d), so a pair with d = 0 gets a finite gradient.  y gets none.
"""
import torch

from ._loss import BVLCLossLayer
from ._params import scalar
from .base import register


class _Contrastive(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, similar, margin, legacy):
        diff = a - b
        dist_sq = (diff * diff).sum(1)
        if legacy:
            dissimilar = torch.clamp(margin - dist_sq, min=0)
        else:
            dissimilar = torch.clamp(margin - dist_sq.sqrt(), min=0) ** 2
        per_pair = torch.where(similar, dist_sq, dissimilar)
        ctx.save_for_backward(diff, dist_sq, similar)
        ctx.margin, ctx.legacy = margin, legacy
        return per_pair.sum() / a.shape[0] / 2

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        diff, dist_sq, similar = ctx.saved_tensors
        alpha = g / diff.shape[0]
        if ctx.legacy:
            mdist = ctx.margin - dist_sq
            beta = -alpha * torch.ones_like(dist_sq)
        else:
            dist = dist_sq.sqrt()
            mdist = ctx.margin - dist
            beta = -alpha * mdist / (dist + 1e-4)
        scale = torch.where(similar, alpha.expand_as(dist_sq),
                            torch.where(mdist > 0, beta, torch.zeros_like(beta)))
        ga = scale.view(-1, *([1] * (diff.dim() - 1))) * diff
        return ga, -ga, None, None, None


@register("ContrastiveLoss")
class ContrastiveLossLayer(BVLCLossLayer):
    exact_num_bottom = 3

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("contrastive_loss_param")
        self.margin = float(scalar(p, "margin", 1.0))
        self.legacy = bool(scalar(p, "legacy_version", False))

    def _check(self, shapes):
        a, b, y = (tuple(s) + (1,) * (4 - len(s)) for s in shapes)
        self.check_first_dims([a, y])
        if len(a) != 4 or len(b) != 4 or len(y) != 4 or a[1] != b[1] or a[0] != b[0] or \
                a[2:] != (1, 1) or b[2:] != (1, 1) or y[1:] != (1, 1, 1):
            raise self.error(f"ContrastiveLoss needs a and b of shape (N, C, 1, 1) and y "
                             f"(N, 1, 1, 1); got {[tuple(s) for s in shapes]}")

    def layer_setup(self, bottom_shapes):
        self._check(bottom_shapes)
        return [()]

    def forward(self, a, b, y):
        self._check([a.shape, b.shape, y.shape])
        n = a.shape[0]
        similar = y.detach().reshape(n).to(torch.int64) != 0
        loss = _Contrastive.apply(a.reshape(n, -1), b.reshape(n, -1), similar, self.margin,
                                  self.legacy)
        return (self.no_gradient_to(loss, [y], "the similarity label (bottom 2)"),)
