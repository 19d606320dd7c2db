"""The paper's boundary measure: mean IoU inside a narrow band ("trimap") around object edges.

DeepLab v1 (section 5, Figure 5) scores only the pixels within a band of w = 1..40 pixels
around object boundaries, taking the boundaries from the ``void`` band (255) that VOC's
annotations draw along them.  Here a pixel is in the band of width w when its distance to the
nearest void pixel is at most w.  The distance is Euclidean by default (``metric="chessboard"``:
max(|dy|, |dx|)).  Void pixels are in every band (distance 0) but the confusion matrix ignores
them.

One capped distance map per image serves every width: a column pass gives the vertical
distance to the nearest void pixel, then a row pass over offsets |dx| <= max_width takes the
minimum of dx^2 + dy^2.  Distances beyond the cap are exact to within the cap.
"""
import numpy as np
import torch

from ..errors import CaffeError
from .metrics import confusion_matrix, scores

DEFAULT_WIDTHS = tuple(range(1, 41))
METRICS = ("euclidean", "chessboard")


def _hw(a):
    """(H, W) from (H, W), (1, H, W) or (1, 1, H, W) numpy or torch, without losing H = 1."""
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    if a.ndim > 2 and int(np.prod(a.shape[:-2])) == 1:
        a = a.reshape(a.shape[-2:])
    return a


def _column_distance(void, cap):
    """(H, W) int64: |dy| to the nearest void pixel in the same column, capped at ``cap``."""
    h, w = void.shape
    rows = np.arange(h)[:, None].repeat(w, 1)
    big = h + cap + 1
    above = np.where(void, rows, -big)
    np.maximum.accumulate(above, axis=0, out=above)
    below = np.where(void, rows, 2 * big)
    below = np.minimum.accumulate(below[::-1], axis=0)[::-1]
    return np.minimum(np.minimum(rows - above, below - rows), cap)


def void_distance(label, max_width=40, ignore_label=255, metric="euclidean"):
    """(H, W) distance of each pixel to the nearest ``ignore_label`` pixel, capped.

    label: (H, W) numpy or torch class indices.  Returns float64: Euclidean (or chessboard)
    distance in pixels, exact up to ``max_width``; pixels farther away (or all pixels, when the
    map has no void pixel) get ``inf``.
    """
    if metric not in METRICS:
        raise CaffeError(f"metric must be one of {METRICS}, got {metric!r}")
    lab = _hw(label)
    if lab.ndim != 2:
        raise CaffeError(f"label must be (H, W), got shape {np.shape(label)}")
    cap = int(max_width) + 1
    if cap < 1:
        raise CaffeError(f"max_width must be >= 0, got {max_width}")
    void = lab == ignore_label
    h, w = lab.shape
    if not void.any():
        return np.full((h, w), np.inf)
    dy = _column_distance(void, cap)
    # Row pass: best over horizontal offsets within the cap (pixel x looks at column x + dx).
    euclid = metric == "euclidean"
    col_cost = (dy * dy if euclid else dy).astype(np.int32)
    best = col_cost.copy()
    for dx in range(1, min(cap, w - 1) + 1):
        right = col_cost[:, dx:] + dx * dx if euclid else np.maximum(col_cost[:, dx:], dx)
        left = col_cost[:, :w - dx] + dx * dx if euclid else np.maximum(col_cost[:, :w - dx], dx)
        np.minimum(best[:, :w - dx], right, out=best[:, :w - dx])      # pixel x sees x + dx
        np.minimum(best[:, dx:], left, out=best[:, dx:])               # pixel x sees x - dx
    dist = np.sqrt(best) if metric == "euclidean" else best.astype(np.float64)
    dist[dist > max_width] = np.inf
    return dist


def trimap_mask(label, width, ignore_label=255, metric="euclidean"):
    """(H, W) bool: pixels within ``width`` pixels of a void pixel (void pixels included)."""
    if width < 0:
        raise CaffeError(f"trimap width must be >= 0, got {width}")
    return void_distance(label, width, ignore_label, metric) <= width


class TrimapMeter:
    """Confusion matrices inside the trimap band, one per width, summed over a data set.

    ``add(pred, label)``: one (H, W) pair (numpy or torch); ``mious(absent)`` -> list of mean
    IoU per width; ``scores(absent)`` -> list of scores() dicts."""

    def __init__(self, num_classes, widths=DEFAULT_WIDTHS, ignore_label=255,
                 metric="euclidean"):
        self.widths = [int(w) for w in widths]
        if not self.widths or min(self.widths) < 0:
            raise CaffeError(f"trimap widths must be non-empty and >= 0, got {list(widths)}")
        self.num_classes = int(num_classes)
        self.ignore_label = ignore_label
        self.metric = metric
        self.confs = np.zeros((len(self.widths), self.num_classes, self.num_classes), np.int64)

    def add(self, pred, label, dist=None):
        """dist: the label's void_distance (capped at max(widths) or more), if known."""
        p, g = _hw(pred), _hw(label)
        if p.shape != g.shape:
            raise CaffeError(f"pred shape {p.shape} and label shape {g.shape} differ")
        if dist is None:
            dist = void_distance(g, max(self.widths), self.ignore_label, self.metric)
        # Bands are nested: count each pixel once, in the narrowest band holding it, then
        # sum the counts outwards over the sorted widths.
        order = np.argsort(self.widths, kind="stable")
        sorted_w = np.asarray(self.widths)[order]
        first = np.searchsorted(sorted_w, dist, side="left")      # len(widths) = in no band
        keep = first < len(sorted_w)
        if self.ignore_label is not None:
            keep &= g != self.ignore_label
        bad = keep & ((p < 0) | (p >= self.num_classes))
        if bad.any():
            raise CaffeError(f"pred has values {sorted(set(p[bad].tolist()))[:8]} outside "
                             f"0..{self.num_classes - 1}")
        conf = confusion_matrix(p[keep].astype(np.int64) + self.num_classes * first[keep],
                                g[keep], self.num_classes * len(sorted_w), None)
        c = self.num_classes
        per = np.stack([conf[:c, k * c:(k + 1) * c] for k in range(len(sorted_w))])
        # rows of conf beyond the first c stay empty: labels are < c
        self.confs[order] += np.cumsum(per, axis=0)

    def scores(self, absent="skip"):
        return [scores(c, absent) for c in self.confs]

    def mious(self, absent="skip"):
        return [s["miou"] for s in self.scores(absent)]


def trimap_miou(preds, labels, widths=DEFAULT_WIDTHS, num_classes=21, ignore_label=255,
                metric="euclidean", absent="skip"):
    """Mean IoU inside the band around void pixels, for each width (the paper's Figure 5).

    preds, labels: equal-length iterables of (H, W) maps.  Returns {width: miou}."""
    meter = TrimapMeter(num_classes, widths, ignore_label, metric)
    for p, g in zip(preds, labels):
        meter.add(p, g)
    return dict(zip(meter.widths, meter.mious(absent)))
