"""deeplab_caffe.eval.crf_search: the CRF cross-validation on precomputed score maps."""
import numpy as np
import pytest
import torch

from deeplab_caffe.crf import dense_crf
from deeplab_caffe.data.synthetic import class_colours, render_sample
from deeplab_caffe.errors import CaffeError
from deeplab_caffe.eval import confusion_matrix, scores
from deeplab_caffe.eval.crf_search import (Sample, best_row, coarse_to_fine, evaluate_grid,
                                           fine_axes, grid_points, parse_grid, parse_values)


def _samples(n=2, num_classes=3, size=(22, 26), seed=5):
    """Synthetic images with coarse, noisy scores: the blurred one-hot of the clean label."""
    out = []
    colours = class_colours(num_classes)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        image, label, clean = render_sample(rng, size[0], size[1], num_classes, colours)
        onehot = np.eye(num_classes, dtype=np.float32)[clean].transpose(2, 0, 1)
        coarse = torch.nn.functional.avg_pool2d(torch.from_numpy(onehot)[None], 5, 1, 2,
                                                count_include_pad=False)[0].numpy()
        s = 3 * coarse + rng.normal(0, 0.8, coarse.shape).astype(np.float32)
        out.append(Sample(s.astype(np.float16), image, label, f"im{i}"))
    return out


def _reference(samples, point, num_classes, max_iter):
    conf = np.zeros((num_classes, num_classes), np.int64)
    for s in samples:
        q = dense_crf(torch.from_numpy(s.scores.astype(np.float32)),
                      torch.from_numpy(s.image.transpose(2, 0, 1).copy()).float(),
                      pos_w=3, pos_xy_std=3, bi_w=point[0], bi_xy_std=point[1],
                      bi_rgb_std=point[2], max_iter=max_iter)
        conf += confusion_matrix(q.argmax(0).numpy(), s.label, num_classes)
    return scores(conf)


def test_grid_values_and_fine_axes():
    assert parse_values("50:100:10") == (50, 60, 70, 80, 90, 100)
    assert parse_values("3:10") == tuple(float(v) for v in range(3, 11))
    assert parse_values("5,10") == (5.0, 10.0)
    assert parse_grid("5,10;50:100:10;3:10") == ((5, 10), (50, 60, 70, 80, 90, 100),
                                                 tuple(range(3, 11)))
    for bad in ("5;6", "1:0", "a,b", "1:2:0"):
        with pytest.raises(CaffeError):
            parse_grid(bad) if ";" in bad else parse_values(bad)
    with pytest.raises(CaffeError, match="bi_xy_std values must be > 0"):
        parse_grid("5;0,1;3")
    assert fine_axes((5, 50, 3), (1, 5, 0.5), 1) == ((4, 5, 6), (45, 50, 55), (2.5, 3, 3.5))
    assert fine_axes((1, 5, 0.5), (1, 5, 0.5), 1) == ((1, 2), (5, 10), (0.5, 1))   # > 0 only
    assert len(grid_points(((5, 10), (50, 60), (3, 4)))) == 8


def test_evaluate_grid_matches_direct_crf_and_workers_agree():
    samples = _samples()
    points = grid_points(((5.0,), (3.0, 20.0), (3.0, 10.0)))      # a 2 x 2 grid
    rows = evaluate_grid(samples, points, 3, max_iter=5, workers=1)
    assert [(r["bi_w"], r["bi_xy_std"], r["bi_rgb_std"]) for r in rows] == points
    for r, p in zip(rows, points):
        ref = _reference(samples, p, 3, 5)
        assert r["miou"] == ref["miou"] and r["pixel_acc"] == ref["pixel_acc"]
    # the settings must matter here, or the comparison above proves little
    assert len({r["miou"] for r in rows}) > 1
    pooled = evaluate_grid(samples, points, 3, max_iter=5, workers=2)
    assert pooled == rows
    # the GPU's batched path (run here on the CPU): padded batches with data_dim
    mixed = samples + _samples(n=1, size=(17, 30), seed=9)
    per_image = evaluate_grid(mixed, points, 3, max_iter=5, workers=1)
    batched = evaluate_grid(mixed, points, 3, max_iter=5, workers=0, batch_size=3)
    for a, b in zip(per_image, batched):
        assert a == b
    ticks = []
    evaluate_grid(samples[:1], points[:1], 3, max_iter=1, progress=lambda: ticks.append(1))
    assert ticks == [1]


def test_coarse_to_fine_searches_around_the_best():
    samples = _samples(n=1)
    rows, best = coarse_to_fine(samples, 3, coarse=((5.0,), (3.0, 20.0), (3.0,)),
                                fine_step=(1.0, 2.0, 1.0), fine_radius=1, max_iter=3)
    coarse = [r for r in rows if r["stage"] == "coarse"]
    fine = [r for r in rows if r["stage"] == "fine"]
    top = best_row(coarse)
    assert len(coarse) == 2 and len(fine) == 27 - 1           # the centre is not re-run
    for r in fine:
        assert abs(r["bi_w"] - top["bi_w"]) <= 1 and abs(r["bi_xy_std"] - top["bi_xy_std"]) <= 2
        assert abs(r["bi_rgb_std"] - top["bi_rgb_std"]) <= 1
    assert best["miou"] == max(r["miou"] for r in rows)


def test_evaluate_grid_checks_samples():
    s = _samples(n=1)[0]
    bad = Sample(s.scores[:, :-1], s.image, s.label, "bad")
    with pytest.raises(CaffeError, match="bad"):
        evaluate_grid([bad], [(5, 50, 3)], 3)
    with pytest.raises(CaffeError, match="at least one"):
        evaluate_grid([], [(5, 50, 3)], 3)
