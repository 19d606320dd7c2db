"""InfogainLoss (BVLC master, with its own softmax): scores (outer, K, inner) around
``infogain_loss_param { axis (1) }``, labels (outer * inner values), and the K x K infogain
matrix H from a third bottom or ``infogain_loss_param { source }`` (a BlobProto file).

p = softmax(scores) over the axis; loss = -sum over non-ignored positions of
sum_k H[label, k] log(max(p_k, 1e-20)) / normalizer (``loss_param`` ignore_label and
normalization, default VALID; the deprecated normalize is
refused, as master CHECKs).  Gradient (p sum_k H[label, k] - H[label, :]) / normalizer, the
threshold acting on the value only, as infogain_loss_layer.cpp; labels and H get none.  An
optional second top is p.
"""
import math

import torch

from ._loss import BVLCLossLayer, normalization_mode, normalizer
from ._params import canonical_axis, count, scalar
from .base import register
from .multinomial_logistic_loss import LOG_THRESHOLD


def read_infogain_matrix(layer, path):
    from ..errors import CaffeError
    from ..io.blobs import read_blob_proto_file
    try:
        return torch.from_numpy(read_blob_proto_file(path))
    except CaffeError as e:
        raise layer.error(f"infogain_loss_param source: {e}") from None


@register("InfogainLoss")
class InfogainLossLayer(BVLCLossLayer):
    exact_num_bottom = None
    min_num_bottom = 2
    max_num_bottom = 3
    exact_num_top = None
    min_num_top = 1
    max_num_top = 2

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("infogain_loss_param")
        self.axis = int(scalar(p, "axis", 1))
        self.source = scalar(p, "source")
        lp = self.param("loss_param")
        self.ignore = int(scalar(lp, "ignore_label")) if lp.has("ignore_label") else None
        if lp.has("normalize"):
            raise self.error('loss_param normalize is deprecated for InfogainLoss; use '
                             '"normalization"')
        self.normalization = normalization_mode(self, "VALID")
        self.infogain = None

    def _dims(self, shapes):
        s = tuple(shapes[0])
        a = canonical_axis(self, self.axis, len(s))
        outer, k, inner = count(s, 0, a), s[a], count(s, a + 1)
        if count(tuple(shapes[1])) != outer * inner:
            raise self.error(f"number of labels must match number of predictions: scores "
                             f"{s} with axis {a} need {outer * inner} labels, got "
                             f"{count(tuple(shapes[1]))}")
        if len(shapes) == 3 and count(tuple(shapes[2])) != k * k:
            raise self.error(f"the infogain matrix has {count(tuple(shapes[2]))} values; "
                             f"{k} labels need {k}x{k}")
        return a, outer, k, inner

    def layer_setup(self, bottom_shapes):
        self.check_first_dims(bottom_shapes)
        a, _, k, _ = self._dims(bottom_shapes)
        if len(bottom_shapes) < 3:
            if self.source is None:
                raise self.error("infogain matrix source must be specified "
                                 "(infogain_loss_param { source }) or given as bottom 2")
            self.infogain = read_infogain_matrix(self, self.source)
            if self.infogain.numel() != k * k:
                raise self.error(f"infogain matrix '{self.source}' has "
                                 f"{self.infogain.numel()} values; {k} labels need {k}x{k}")
        tops = [()]
        if self.num_top == 2:
            tops.append(tuple(bottom_shapes[0]))
        return tops

    def forward(self, scores, label, *matrix):
        a, outer, k, inner = self._dims([scores.shape, label.shape]
                                        + [m.shape for m in matrix])
        H = (matrix[0] if matrix else self.infogain).detach().to(scores)
        H = H.reshape(k, k)
        logp = torch.log_softmax(scores, dim=a)
        # log(max(p, 1e-20)) in value only: the backward is the unclamped p * sum(H) - H.
        clamped = torch.clamp(logp, min=math.log(LOG_THRESHOLD))
        logp_rows = (logp + (clamped - logp).detach()).reshape(outer, k, inner)
        lab = label.detach().reshape(outer, inner).to(torch.int64)
        valid = torch.ones_like(lab, dtype=torch.bool)
        if self.ignore is not None:
            valid = lab != self.ignore
        bad = valid & ((lab < 0) | (lab >= k))
        if bool(bad.any()):
            raise self.error(f"label {int(lab[bad][0])} out of range [0, {k})")
        rows = H[torch.where(valid, lab, torch.zeros_like(lab))]      # (outer, inner, k)
        per = -(rows.permute(0, 2, 1) * logp_rows).sum(1) * valid.to(scores.dtype)
        norm = normalizer(self.normalization, outer, inner, valid.sum().to(scores.dtype))
        loss = self.no_gradient_to(per.sum() / norm, [label] + list(matrix),
                                   "label or infogain inputs")
        if self.num_top == 2:
            return (loss, torch.softmax(scores, dim=a))
        return (loss,)
