"""SoftmaxWithLoss: softmax over ``axis`` then the mean (by Caffe's normalizer) of -log p_label.

Two dialects, chosen by which parameter message the layer carries:
  * BVLC: ``loss_param { ignore_label normalization normalize }``.  Loss = -sum over
    non-ignored positions of log(max(p_label, FLT_MIN)), divided by max(1, normalizer):
    FULL = outer*inner, VALID = non-ignored count (= FULL without ignore_label), BATCH_SIZE =
    outer, NONE = 1.  Default VALID; the deprecated ``normalize: false`` means BATCH_SIZE.
  * DeepLab v1: ``softmaxloss_param { repeated ignore_label, weight_source }``: per-class weights
    w (a text file, one non-negative number per class; default all 1).  Loss = sum w_label *
    (-log p_label) / sum w_label over the non-ignored positions of the whole batch.
Ignored positions get exactly zero gradient (DeepLab v1's Caffe leaves stale values there);
elsewhere the gradient is w (p - onehot) / normalizer, Caffe's, also where p underflows.
A label that is neither ignored nor in [0, C) is an error.  The label blob holds integers as
floats, N x 1 x H x W or N x H x W (any shape with outer*inner values).  Top 0 is the loss (a
0-axis scalar); an optional top 1 is the softmax probabilities, shaped like the scores.
"""
import math

import torch

from ._loss import normalization_mode, normalizer
from ._params import canonical_axis, count, flt_min, scalar
from .base import Layer, register

def read_class_weights(layer, path):
    """The per-class loss weights of a ``weight_source`` file (whitespace-separated numbers)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise layer.error(f"cannot read weight_source '{path}': {e.strerror}") from None
    weights = []
    for i, tok in enumerate(text.split()):
        try:
            w = float(tok)
        except ValueError:
            raise layer.error(f"weight_source '{path}': value #{i + 1} '{tok}' is not a number") \
                from None
        if not w >= 0:
            raise layer.error(f"weight_source '{path}': weights cannot be negative ({tok})")
        weights.append(w)
    return weights


def picked_log_prob(layer, scores, label, axis, ignore):
    """log p_label (Caffe's clamp at log FLT_MIN in value only), the valid mask and the labels.

    Returns (logp (M,), valid (M,) bool, safe_label (M,) int64) with M = outer * inner."""
    C = scores.shape[axis]
    M = count(tuple(scores.shape), 0, axis) * count(tuple(scores.shape), axis + 1)
    if label.numel() != M:
        raise layer.error(f"label has {label.numel()} values; the scores {tuple(scores.shape)} "
                          f"need {M} (one per position outside axis {axis})")
    lab = label.reshape(-1).to(torch.int64)      # truncation toward zero, like static_cast<int>
    valid = torch.ones_like(lab, dtype=torch.bool)
    for v in ignore:
        valid &= lab != v
    bad = valid & ((lab < 0) | (lab >= C))
    if bool(bad.any()):
        first = int(lab[bad][0])
        raise layer.error(f"unexpected label {first}: labels must be in [0, {C}) or one of the "
                          f"ignore_label values {sorted(ignore)}")
    safe = torch.where(valid, lab, torch.zeros_like(lab))
    logp = torch.log_softmax(scores, dim=axis).movedim(axis, -1).reshape(M, C)
    picked = logp.gather(1, safe[:, None]).squeeze(1)
    # Caffe takes log(max(p, FLT_MIN)) in the forward but its backward is always p - onehot.
    clamped = torch.clamp(picked, min=math.log(flt_min()))
    picked = picked + (clamped - picked).detach()
    return picked, valid, safe


@register("SoftmaxWithLoss")
class SoftmaxWithLossLayer(Layer):
    exact_num_bottom = 2
    min_num_top = 1
    max_num_top = 2
    auto_top_blobs = True

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.axis = scalar(self.param("softmax_param"), "axis", 1)
        lp = self.param("loss_param")
        self.deeplab = spec.message.has("softmaxloss_param")
        self.ignore = set()
        if lp.has("ignore_label"):
            self.ignore.add(int(scalar(lp, "ignore_label")))
        self.normalization = normalization_mode(self, "VALID")
        self.weight_source = None
        if self.deeplab:
            sp = self.param("softmaxloss_param")
            if lp.has("normalization") or lp.has("normalize"):
                raise self.error("softmaxloss_param (DeepLab v1) normalizes by the sum of class "
                                 "weights; loss_param normalization cannot be combined with it")
            self.ignore.update(int(v) for v in sp.getlist("ignore_label"))
            self.weight_source = scalar(sp, "weight_source")
        self.class_weights = None

    def layer_setup(self, bottom_shapes):
        shape, lshape = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        axis = canonical_axis(self, self.axis, len(shape))
        M = count(shape, 0, axis) * count(shape, axis + 1)
        if count(lshape) != M:
            raise self.error(f"label shape {lshape} does not fit scores {shape}: need {M} labels "
                             f"(outer * inner), got {count(lshape)}")
        if self.weight_source is not None:
            w = read_class_weights(self, self.weight_source)
            if len(w) != shape[axis]:
                raise self.error(f"weight_source '{self.weight_source}' has {len(w)} weights for "
                                 f"{shape[axis]} classes")
            self.class_weights = w
        tops = [()]
        if len(self.spec.top) == 2:
            tops.append(shape)
        return tops

    def _normalizer(self, scores, axis, valid):
        shape = tuple(scores.shape)
        valid_count = valid.sum().to(scores.dtype) if self.ignore else None
        return normalizer(self.normalization, count(shape, 0, axis), count(shape, axis + 1),
                          valid_count)

    def forward(self, scores, label):
        axis = canonical_axis(self, self.axis, scores.dim())
        picked, valid, safe = picked_log_prob(self, scores, label, axis, self.ignore)
        mask = valid.to(scores.dtype)
        if self.deeplab:
            if self.class_weights is not None:
                cw = torch.tensor(self.class_weights, dtype=scores.dtype, device=scores.device)
                if cw.numel() != scores.shape[axis]:
                    raise self.error(f"{cw.numel()} class weights for {scores.shape[axis]} "
                                     f"classes")
                w = cw[safe] * mask
            else:
                w = mask
            # DeepLab divides by the batch weight; an all-ignored batch would give 0/0 there.
            loss = -(w * picked).sum() / torch.clamp(w.sum(), min=flt_min())
        else:
            loss = -(mask * picked).sum() / self._normalizer(scores, axis, valid)
        if len(self.spec.top) == 2:
            return (loss, torch.softmax(scores, dim=axis))
        return (loss,)

