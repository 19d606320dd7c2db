"""The paper's cross-validation of the dense CRF's bilateral kernel (section 5 / facts section 4).

w1 = bi_w, sigma_alpha = bi_xy_std and sigma_beta = bi_rgb_std are searched on held-out images
(100 val images in the paper), coarse grid first (w1 in {5, 10}, sigma_alpha in 50:10:100,
sigma_beta in 3:1:10), then a finer step around the best; pos_w = pos_xy_std = 3 and 10
mean-field iterations stay fixed.  The net's scores are computed once and reused for every
setting.  Each setting is scored by one confusion matrix over all the images (mean IoU).

Work is spread over a process pool on the CPU (one torch thread each) or batched on the GPU
(the padded batch carries each image's size as DeepLab's data_dim, so results do not depend on
the batching).
"""
import itertools
import multiprocessing as mp
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch

from ..errors import CaffeError
from .metrics import confusion_matrix, scores

COARSE_GRID = ((5.0, 10.0), tuple(float(v) for v in range(50, 101, 10)),
               tuple(float(v) for v in range(3, 11)))
QUICK_GRID = ((5.0, 10.0), (50.0, 100.0), (3.0, 10.0))
FINE_STEP = (1.0, 5.0, 0.5)


@dataclass
class Sample:
    """One held-out image: scores (C, h, w) float, image (h, w, 3) uint8, label (h, w) uint8."""
    scores: np.ndarray
    image: np.ndarray
    label: np.ndarray
    name: str = ""


def parse_values(text):
    """"5,10" or "50:100:10" (inclusive; step 1 when omitted) -> tuple of floats."""
    text = text.strip()
    try:
        if ":" in text:
            parts = [float(v) for v in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            a, b = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1.0
            if step <= 0 or b < a:
                raise ValueError
            n = int(np.floor((b - a) / step + 1e-9)) + 1
            return tuple(round(a + i * step, 10) for i in range(n))
        vals = tuple(float(v) for v in text.split(",") if v.strip())
        if not vals:
            raise ValueError
        return vals
    except ValueError:
        raise CaffeError(f"grid values must be 'a,b,c' or 'start:stop[:step]' with "
                         f"start <= stop and step > 0, got {text!r}") from None


def parse_grid(text):
    """"W;XY;RGB" (each as parse_values) -> (bi_w values, bi_xy_std values, bi_rgb_std values)."""
    parts = text.split(";")
    if len(parts) != 3:
        raise CaffeError(f"--grid needs three ';'-separated lists (bi_w;bi_xy_std;bi_rgb_std), "
                         f"got {text!r}")
    axes = tuple(parse_values(p) for p in parts)
    for name, vals in zip(("bi_w", "bi_xy_std", "bi_rgb_std"), axes):
        if name != "bi_w" and min(vals) <= 0:
            raise CaffeError(f"--grid: {name} values must be > 0, got {vals}")
    return axes


def grid_points(axes):
    return [tuple(p) for p in itertools.product(*axes)]


def fine_axes(best, step=FINE_STEP, radius=1):
    """Axes around the best (bi_w, bi_xy_std, bi_rgb_std): best +- k*step, k <= radius, > 0."""
    return tuple(tuple(v for v in (round(b + k * s, 10) for k in range(-radius, radius + 1))
                       if v > 0) for b, s in zip(best, step))


# -- one setting on a set of images -------------------------------------------------------------
_WORK = {}      # the samples, shared with forked workers


def _crf_labels(sample, point, pos_w, pos_xy_std, max_iter):
    from ..crf import dense_crf
    s = torch.from_numpy(np.ascontiguousarray(sample.scores, np.float32))
    img = torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1)))
    q = dense_crf(s, img, pos_w=pos_w, pos_xy_std=pos_xy_std, bi_w=point[0],
                  bi_xy_std=point[1], bi_rgb_std=point[2], max_iter=max_iter)
    return q.argmax(0).numpy()


def _task(args):
    k, i = args
    w = _WORK
    pred = _crf_labels(w["samples"][i], w["points"][k], w["pos_w"], w["pos_xy_std"],
                       w["max_iter"])
    return k, confusion_matrix(pred, w["samples"][i].label, w["num_classes"], w["ignore"])


def _init_worker():
    torch.set_num_threads(1)


def _run_batched(samples, points, num_classes, pos_w, pos_xy_std, max_iter, ignore, device,
                 batch_size, confs, on_done):
    """Images of similar size batched (padded, data_dim marks each one's region) per CRF call."""
    from ..crf import dense_crf
    order = sorted(range(len(samples)), key=lambda i: samples[i].scores.shape[1:])
    batches = [order[j:j + batch_size] for j in range(0, len(order), batch_size)]
    for k, p in enumerate(points):
        for b in batches:
            H = max(samples[i].scores.shape[1] for i in b)
            W = max(samples[i].scores.shape[2] for i in b)
            C = samples[b[0]].scores.shape[0]
            s = torch.zeros((len(b), C, H, W), dtype=torch.float32, device=device)
            img = torch.zeros((len(b), 3, H, W), dtype=torch.float32, device=device)
            dims = []
            for n, i in enumerate(b):
                c, h, w = samples[i].scores.shape
                s[n, :, :h, :w] = torch.from_numpy(np.asarray(samples[i].scores, np.float32))
                img[n, :, :h, :w] = torch.from_numpy(samples[i].image.transpose(2, 0, 1))
                dims.append((h, w))
            q = dense_crf(s, img, pos_w=pos_w, pos_xy_std=pos_xy_std, bi_w=p[0],
                          bi_xy_std=p[1], bi_rgb_std=p[2], max_iter=max_iter,
                          data_dim=torch.tensor(dims, dtype=torch.float32))
            pred = q.argmax(1).cpu().numpy()
            for n, i in enumerate(b):
                h, w = dims[n]
                confs[k] += confusion_matrix(pred[n, :h, :w], samples[i].label, num_classes,
                                             ignore)
                on_done()


def evaluate_grid(samples: Sequence[Sample], points: List[Tuple[float, float, float]],
                  num_classes, pos_w=3.0, pos_xy_std=3.0, max_iter=10, ignore_label=255,
                  device="cpu", workers=1, batch_size=4, progress=None, absent="skip"):
    """Score every (bi_w, bi_xy_std, bi_rgb_std) point on the samples.

    device "cpu": ``workers`` processes (forked, one torch thread each; 1 = in this process)
    take (point, image) tasks.  A CUDA device, or workers=0: batches of ``batch_size`` images
    (padded to a common size) per CRF call, in this process on ``device``.
    progress: called once per finished (point, image).  Returns one dict per point: bi_w,
    bi_xy_std, bi_rgb_std, miou, pixel_acc, mean_acc."""
    if not samples:
        raise CaffeError("the CRF grid search needs at least one image")
    for s in samples:
        if s.scores.ndim != 3 or s.scores.shape[1:] != s.label.shape or \
                s.image.shape != s.label.shape + (3,):
            raise CaffeError(f"sample {s.name!r}: scores {s.scores.shape}, image "
                             f"{s.image.shape} and label {s.label.shape} do not match "
                             "(C, h, w) / (h, w, 3) / (h, w)")
    confs = np.zeros((len(points), num_classes, num_classes), np.int64)
    tick = progress or (lambda: None)
    dev = torch.device(device)
    if dev.type == "cuda" or workers <= 0:
        _run_batched(samples, points, num_classes, pos_w, pos_xy_std, max_iter, ignore_label, dev,
                 batch_size, confs, tick)
    else:
        _WORK.update(samples=list(samples), points=list(points), num_classes=num_classes,
                     pos_w=pos_w, pos_xy_std=pos_xy_std, max_iter=max_iter, ignore=ignore_label)
        tasks = [(k, i) for k in range(len(points)) for i in range(len(samples))]
        try:
            if workers == 1:
                for t in tasks:
                    k, m = _task(t)
                    confs[k] += m
                    tick()
            else:
                ctx = mp.get_context("fork")
                with ctx.Pool(workers, initializer=_init_worker) as pool:
                    for k, m in pool.imap_unordered(_task, tasks, chunksize=1):
                        confs[k] += m
                        tick()
        finally:
            _WORK.clear()
    rows = []
    for p, c in zip(points, confs):
        s = scores(c, absent)
        rows.append({"bi_w": p[0], "bi_xy_std": p[1], "bi_rgb_std": p[2], "miou": s["miou"],
                     "pixel_acc": s["pixel_acc"], "mean_acc": s["mean_acc"]})
    return rows


def best_row(rows):
    """The row with the highest mIoU (first on ties, so the coarse grid's order decides)."""
    finite = [r for r in rows if r["miou"] == r["miou"]]
    if not finite:
        raise CaffeError("no grid point gave a finite mean IoU (are all labels ignored?)")
    return max(finite, key=lambda r: r["miou"])


def coarse_to_fine(samples, num_classes, coarse=COARSE_GRID, fine_step=FINE_STEP,
                   fine_radius=1, **kw):
    """Coarse grid, then a fine grid around its best; returns (rows with a "stage" key, best)."""
    rows = [dict(r, stage="coarse") for r in
            evaluate_grid(samples, grid_points(coarse), num_classes, **kw)]
    best = best_row(rows)
    if fine_radius > 0:
        seen = {(r["bi_w"], r["bi_xy_std"], r["bi_rgb_std"]) for r in rows}
        axes = fine_axes((best["bi_w"], best["bi_xy_std"], best["bi_rgb_std"]), fine_step,
                         fine_radius)
        todo = [p for p in grid_points(axes) if p not in seen]
        if todo:
            rows += [dict(r, stage="fine") for r in
                     evaluate_grid(samples, todo, num_classes, **kw)]
            best = best_row(rows)
    return rows, best
