"""SegAccuracy (DeepLab v1 SEG_ACCURACY): pixel accuracy, mean class recall and mean IoU of one
batch, from its confusion matrix.

Bottoms: scores (N, C, H, W) and label (N, 1, H, W).  The prediction is the arg-max class; on a
tie Caffe's sort on (score, class) pairs picks the *highest* class index.  Pixels whose label is
in ``seg_accuracy_param { repeated ignore_label }`` are skipped; any other label outside [0, C)
is an error.  Top (1, 1, 1, 3) = [diag / total, mean over classes present in the label of
recall, mean over all C classes of IoU where a class absent from both label and prediction
counts 1].  A batch with every pixel ignored gives pixel accuracy 0, as DeepLab's
ConfusionMatrix::accuracy (0 when the total is 0).  ``metric`` is accepted and
ignored (Caffe's switch on it is commented out).  No gradient.
"""
import torch

from ._params import require_4d
from .base import Layer, register


def confusion_matrix(pred, gt, num_classes):
    """(C, C) int64 counts, rows = ground truth, columns = prediction."""
    idx = gt * num_classes + pred
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes,
                                                                           num_classes)


def seg_metrics(conf):
    """(pixel accuracy, mean recall, mean Jaccard) of a confusion matrix, as float64 tensors."""
    conf = conf.to(torch.float64)
    diag, rows, cols = conf.diagonal(), conf.sum(1), conf.sum(0)
    total = conf.sum()
    pixel = diag.sum() / total if total > 0 else torch.zeros((), dtype=torch.float64)
    present = rows > 0
    recall = torch.where(present, diag / rows.clamp(min=1), torch.zeros_like(diag))
    mean_recall = recall.sum() / present.sum().clamp(min=1)
    union = rows + cols - diag
    jac = torch.where(union == diag, torch.ones_like(diag), diag / union.clamp(min=1))
    return pixel, mean_recall, jac.mean()


@register("SegAccuracy")
class SegAccuracyLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("seg_accuracy_param")
        self.ignore = sorted({int(v) for v in p.getlist("ignore_label")})

    def _check(self, shape, lshape):
        require_4d(self, shape, "score bottom")
        require_4d(self, lshape, "label bottom")
        if lshape[0] != shape[0] or lshape[1] != 1 or lshape[2:] != shape[2:]:
            raise self.error(f"label shape {lshape} must be (N, 1, H, W) for scores {shape}")

    def layer_setup(self, bottom_shapes):
        self._check(tuple(bottom_shapes[0]), tuple(bottom_shapes[1]))
        return [(1, 1, 1, 3)]

    @torch.no_grad()
    def forward(self, scores, label):
        self._check(tuple(scores.shape), tuple(label.shape))
        C = scores.shape[1]
        pred = (C - 1) - scores.flip(1).argmax(1)
        gt = label[:, 0].to(torch.int64)
        keep = torch.ones_like(gt, dtype=torch.bool)
        for v in self.ignore:
            keep &= gt != v
        bad = keep & ((gt < 0) | (gt >= C))
        if bool(bad.any()):
            raise self.error(f"unexpected label {int(gt[bad][0])}: labels must be in [0, {C}) "
                             f"or one of the ignore_label values {self.ignore}")
        conf = confusion_matrix(pred[keep], gt[keep], C)
        out = torch.stack(seg_metrics(conf)).to(scores.dtype)
        return (out.reshape(1, 1, 1, 3),)
