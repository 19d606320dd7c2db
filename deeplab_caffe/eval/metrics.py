"""Segmentation scores as the PASCAL VOC protocol defines them, from a confusion matrix.

``confusion_matrix`` counts pixels with rows = ground truth and columns = prediction, skipping the
ignore label (VOC's ``void``, 255).  ``scores`` turns a matrix into pixel accuracy, mean class
accuracy (recall) and per-class / mean IoU = TP / (TP + FP + FN).  ``ConfusionMeter`` sums the
matrix over a data set, which is how the VOC devkit scores (one matrix over all images, not a
mean of per-image scores).

On classes that occur neither in the ground truth nor in the prediction, IoU is 0 / 0.
``absent="skip"`` (the default) leaves them out of the mean: their IoU is NaN.  The VOC devkit
(VOCevalseg.m) divides by every class and so gives NaN in that case.  On VOC val every class
occurs, so both agree.  ``absent="zero"`` counts such a class as 0 and averages over all
``num_classes``.  DeepLab's SEG_ACCURACY layer counts it as 1; pass ``absent="one"`` to match it.
"""
import numpy as np
import torch

from ..errors import CaffeError

ABSENT_MODES = ("skip", "zero", "one")


def _flat_int(x, what):
    """(array, is_torch) as a flat int64 array or tensor; floats must hold whole numbers."""
    if isinstance(x, torch.Tensor):
        t = x.detach().reshape(-1)
        if t.is_floating_point():
            if t.numel() and not bool((t == t.round()).all()):
                raise CaffeError(f"{what} must hold whole class indices, got fractional values")
        return t.to(torch.int64), True
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise CaffeError(f"{what} must be a numeric array, got dtype {a.dtype}")
    a = a.reshape(-1)
    if a.dtype.kind == "f" and a.size and not np.all(a == np.round(a)):
        raise CaffeError(f"{what} must hold whole class indices, got fractional values")
    return a.astype(np.int64), False


def confusion_matrix(pred, label, num_classes, ignore_label=255):
    """(num_classes, num_classes) int64 pixel counts; rows = ground truth, columns = prediction.

    pred, label: arrays of the same shape (any, e.g. (H, W) or (N, H, W)), numpy or torch,
    integer class indices (float tensors holding whole numbers are accepted, like Caffe's
    label blobs).  Pixels whose label is ``ignore_label`` (None: no ignored value) are skipped.
    Any other label, or any prediction at a counted pixel, outside [0, num_classes) is a
    CaffeError naming the value.  Returns a torch tensor on pred's device when pred is a torch
    tensor, a numpy array otherwise.
    """
    num_classes = int(num_classes)
    if num_classes < 1:
        raise CaffeError(f"num_classes must be >= 1, got {num_classes}")
    if tuple(np.shape(pred)) != tuple(np.shape(label)):
        raise CaffeError(f"pred shape {tuple(np.shape(pred))} and label shape "
                         f"{tuple(np.shape(label))} differ")
    p, p_torch = _flat_int(pred, "pred")
    g, g_torch = _flat_int(label, "label")
    if p_torch or g_torch:
        dev = p.device if p_torch else (g.device if g_torch else None)
        p = p.to(dev) if p_torch else torch.from_numpy(p).to(dev)
        g = g.to(dev) if g_torch else torch.from_numpy(g).to(dev)
        keep = g != ignore_label if ignore_label is not None else torch.ones_like(g, dtype=bool)
        p, g = p[keep], g[keep]
        _check_range(g, num_classes, "label", ignore_label)
        _check_range(p, num_classes, "pred", None)
        counts = torch.bincount(g * num_classes + p, minlength=num_classes * num_classes)
        conf = counts.reshape(num_classes, num_classes)
        return conf if p_torch else conf.cpu().numpy()
    keep = g != ignore_label if ignore_label is not None else np.ones(g.shape, bool)
    p, g = p[keep], g[keep]
    _check_range(g, num_classes, "label", ignore_label)
    _check_range(p, num_classes, "pred", None)
    counts = np.bincount(g * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _check_range(v, num_classes, what, ignore_label):
    bad = (v < 0) | (v >= num_classes)
    if bool(bad.any()):
        values = sorted({int(x) for x in (v[bad][:1000].tolist())})[:8]
        extra = f" and {ignore_label} (ignored)" if ignore_label is not None else ""
        raise CaffeError(f"{what} has values {values} outside 0..{num_classes - 1}{extra}")


def scores(conf, absent="skip"):
    """Scores of a confusion matrix (rows = ground truth), as the VOC protocol defines them.

    Returns a dict of floats / float64 numpy arrays:
      pixel_acc  sum(TP) / all counted pixels (NaN when the matrix is empty)
      acc        per-class accuracy TP / (TP + FN) (recall); NaN for classes with no GT pixel
      mean_acc   mean of acc over classes with GT pixels
      iou        per-class TP / (TP + FP + FN); for a class in neither GT nor prediction:
                 NaN (absent="skip"), 0 ("zero") or 1 ("one", DeepLab's SEG_ACCURACY)
      miou       mean IoU: over the classes present in GT or prediction ("skip"), or over all
                 classes ("zero", "one")
      freq_iou   IoU weighted by GT pixel frequency (FCN's "f.w. IU")
      present    per-class bool: the class is in the GT or the prediction
    """
    if absent not in ABSENT_MODES:
        raise CaffeError(f"absent must be one of {ABSENT_MODES}, got {absent!r}")
    c = conf.detach().cpu().numpy() if isinstance(conf, torch.Tensor) else np.asarray(conf)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise CaffeError(f"a confusion matrix must be square (C, C), got shape {c.shape}")
    c = c.astype(np.float64)
    tp, gt, pr = np.diag(c), c.sum(1), c.sum(0)
    total = c.sum()
    union = gt + pr - tp
    present = union > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(gt > 0, tp / gt, np.nan)
        iou = np.where(present, tp / union, np.nan)
        pixel_acc = tp.sum() / total if total else float("nan")
    if absent == "zero":
        iou = np.where(present, iou, 0.0)
    elif absent == "one":
        iou = np.where(present, iou, 1.0)
    finite = ~np.isnan(iou)
    miou = float(iou[finite].mean()) if finite.any() else float("nan")
    mean_acc = float(np.nanmean(acc)) if (gt > 0).any() else float("nan")
    freq_iou = float(np.nansum(gt / total * np.nan_to_num(iou))) if total else float("nan")
    return {"pixel_acc": float(pixel_acc), "acc": acc, "mean_acc": mean_acc, "iou": iou,
            "miou": miou, "freq_iou": freq_iou, "present": present}


class ConfusionMeter:
    """A confusion matrix summed over a data set (the VOC devkit's way of scoring).

    ``add(pred, label)`` takes one image or a batch; ``conf`` is the (C, C) int64 numpy sum;
    ``scores(absent)`` the dict of ``scores``."""

    def __init__(self, num_classes, ignore_label=255):
        self.num_classes = int(num_classes)
        self.ignore_label = ignore_label
        self.conf = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.count = 0

    def add(self, pred, label):
        m = confusion_matrix(pred, label, self.num_classes, self.ignore_label)
        self.conf += m.cpu().numpy() if isinstance(m, torch.Tensor) else m
        self.count += 1
        return m

    def scores(self, absent="skip"):
        return scores(self.conf, absent)


def evaluate(preds, labels, num_classes, ignore_label=255, absent="skip"):
    """Scores of pairs of (prediction, label) maps summed over a data set (one confusion matrix).

    preds, labels: equal-length iterables of same-shape maps (the shapes may vary per pair)."""
    meter = ConfusionMeter(num_classes, ignore_label)
    n = 0
    for p, g in zip(preds, labels):
        meter.add(p, g)
        n += 1
    out = meter.scores(absent)
    out["conf"] = meter.conf
    out["images"] = n
    return out


def result_json(s, class_names=None):
    """A scores() dict as plain JSON types (NaN -> None), with the class names if given."""
    def clean(v):
        if isinstance(v, np.ndarray):
            return [clean(x) for x in v.tolist()]
        if isinstance(v, (float, np.floating)):
            return None if np.isnan(v) else float(v)
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    out = {k: clean(v) for k, v in s.items()}
    if class_names is not None:
        out["class_names"] = list(class_names)
    return out


def format_table(results, class_names=None):
    """Per-class IoU and the summary lines as text, one column per named result.

    results: {"net": scores-dict, "crf": scores-dict, ...} (same number of classes)."""
    names = list(results)
    first = results[names[0]]
    num = len(first["iou"])
    if class_names is None or len(class_names) != num:
        class_names = [f"class {i}" for i in range(num)]
    width = max(12, max(len(n) for n in class_names) + 2)
    head = "".ljust(width) + "".join(n.rjust(10) for n in names)
    lines = [head, "-" * len(head)]

    def pct(v):
        return "n/a".rjust(10) if v is None or v != v else f"{100 * v:10.2f}"
    for i, cname in enumerate(class_names):
        lines.append(cname.ljust(width) + "".join(pct(results[n]["iou"][i]) for n in names))
    lines.append("-" * len(head))
    for key, label in (("miou", "mean IoU"), ("pixel_acc", "pixel acc"),
                       ("mean_acc", "mean acc")):
        lines.append(label.ljust(width) + "".join(pct(results[n][key]) for n in names))
    return "\n".join(lines)
