"""Accuracy (BVLC): the fraction of positions whose label is among the top_k scores.

``accuracy_param { top_k (1) axis (1) ignore_label }``.  A position counts as correct when at
most top_k classes score >= the true class (ties count against it, as in Caffe).  Top 0: the
accuracy (0-axis scalar, 0 when nothing is counted); optional top 1: per-class accuracy (C,).
No gradient.
"""
import torch

from ._params import canonical_axis, count, scalar
from .base import Layer, register


@register("Accuracy")
class AccuracyLayer(Layer):
    exact_num_bottom = 2
    min_num_top = 1
    max_num_top = 2

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("accuracy_param")
        self.top_k = int(scalar(p, "top_k", 1))
        self.axis = scalar(p, "axis", 1)
        self.ignore_label = int(scalar(p, "ignore_label")) if p.has("ignore_label") else None

    def _dims(self, shape, lshape):
        axis = canonical_axis(self, self.axis, len(shape))
        C = shape[axis]
        if not 1 <= self.top_k <= C:
            raise self.error(f"top_k {self.top_k} must be in [1, {C}] (the number of classes)")
        M = count(shape, 0, axis) * count(shape, axis + 1)
        if count(lshape) != M:
            raise self.error(f"label shape {lshape} does not fit scores {shape}: need {M} labels")
        return axis, C

    def layer_setup(self, bottom_shapes):
        axis, C = self._dims(tuple(bottom_shapes[0]), tuple(bottom_shapes[1]))
        return [()] + ([(C,)] if len(self.spec.top) == 2 else [])

    @torch.no_grad()
    def forward(self, scores, label):
        axis, C = self._dims(tuple(scores.shape), tuple(label.shape))
        s = scores.movedim(axis, -1).reshape(-1, C)
        lab = label.reshape(-1).to(torch.int64)
        valid = torch.ones_like(lab, dtype=torch.bool)
        if self.ignore_label is not None:
            valid &= lab != self.ignore_label
        bad = valid & ((lab < 0) | (lab >= C))
        if bool(bad.any()):
            raise self.error(f"unexpected label {int(lab[bad][0])}: labels must be in [0, {C})")
        safe = torch.where(valid, lab, torch.zeros_like(lab))
        true = s.gather(1, safe[:, None])
        correct = ((s >= true).sum(1) <= self.top_k) & valid
        n = valid.sum()
        acc = torch.where(n > 0, correct.sum().to(s.dtype) / n.clamp(min=1), s.new_zeros(()))
        if len(self.spec.top) == 1:
            return (acc,)
        per_n = torch.bincount(safe[valid], minlength=C).to(s.dtype)
        per_ok = torch.bincount(safe[correct], minlength=C).to(s.dtype)
        per = torch.where(per_n > 0, per_ok / per_n.clamp(min=1), torch.zeros_like(per_n))
        return (acc, per)
