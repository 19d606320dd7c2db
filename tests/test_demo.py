"""tools/demo.py --quick end to end (a few iterations on a tiny synthetic set): every output is
written, results.json holds the table's numbers, and the synthetic set is kept on a rerun with the
same parameters.  The CRF's gain is not asserted: a 5-iteration net is too weak to show it (the
full demo's is measured, see the demo's results.md).  The reported mIoU (overall and in the
trimap bands) and the CRF's gain are checked against a naive count over the saved label PNGs."""
import argparse
import json
import os

import numpy as np
import pytest
from PIL import Image

from deeplab_caffe.cli import demo

VOID = 255


def _unit(v):
    return v is not None and 0.0 <= v <= 1.0


def _band(gt, width):
    """Pixels within ``width`` px (Euclidean) of a void pixel: the void mask shifted by every
    offset of that length or less."""
    void = gt == VOID
    h, w = gt.shape
    band = np.zeros_like(void)
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            if dy * dy + dx * dx <= width * width:
                band[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] |= \
                    void[max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
    return band


def _naive_miou(out, folder, width=None):
    """Mean IoU of OUT/test/<folder>/*.png against the ground truth, counted class by class
    over every val image (void pixels left out; classes in neither GT nor prediction too);
    within the trimap band of ``width`` px when given."""
    data = out / "data"
    inter = np.zeros(demo.NUM_LABELS)
    union = np.zeros(demo.NUM_LABELS)
    for line in (data / "list" / "val.txt").read_text().split("\n"):
        if not line.strip():
            continue
        img_rel, lab_rel = line.split()
        image_id = os.path.splitext(os.path.basename(img_rel))[0]
        gt = np.asarray(Image.open(str(data) + lab_rel))
        pred = np.asarray(Image.open(out / "test" / folder / (image_id + ".png")))
        assert pred.shape == gt.shape      # crop 129 keeps the whole (<= 128 px) image
        keep = gt != VOID
        if width is not None:
            keep &= _band(gt, width)
        for c in range(demo.NUM_LABELS):
            inter[c] += np.sum((pred == c) & (gt == c) & keep)
            union[c] += np.sum(((pred == c) | (gt == c)) & keep)
    return float(np.mean(inter[union > 0] / union[union > 0]))


def test_demo_quick(tmp_path):
    out = tmp_path / "demo_out"
    assert demo.main(["--quick", "--out", str(out), "--seed", "3", "--bi-xy-std", "20"]) == 0
    for name in ("results.json", "results.md", "trimap.png", "examples.png", "train.log",
                 "train_log.png", "test/results.json", "model/demo/train_iter_5.caffemodel",
                 "data/list/val.txt", "list/train_aug.txt"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())
    assert res["seed"] == 3 and res["quick"] is True and res["iterations"] == 5
    assert res["val_images"] == demo.QUICK["num_val"]
    assert res["crf_params"]["bi_xy_std"] == 20.0
    assert res["crf_params"]["bi_rgb_std"] == demo.DEMO_CRF["bi_rgb_std"]
    for key in ("net", "crf"):
        for metric in ("pixel_acc", "mean_acc", "miou"):
            assert _unit(res[key][metric]), (key, metric, res[key][metric])
        assert set(res["trimap_miou"][key]) == {str(w) for w in demo.REPORT_WIDTHS}
        assert all(_unit(v) for v in res["trimap_miou"][key].values())
        assert len(res["trimap"][key]) == len(res["trimap"]["widths"]) == 40
    naive = {key: _naive_miou(out, folder) for key, folder in (("net", "labels"),
                                                                 ("crf", "labels_crf"))}
    assert res["net"]["miou"] == pytest.approx(naive["net"])
    assert res["crf"]["miou"] == pytest.approx(naive["crf"])
    assert res["crf_gain"]["miou"] == pytest.approx(naive["crf"] - naive["net"])
    for w in (1, 3):
        band = {key: _naive_miou(out, folder, w) for key, folder in (("net", "labels"),
                                                                    ("crf", "labels_crf"))}
        assert res["trimap_miou"]["net"][str(w)] == pytest.approx(band["net"])
        assert res["trimap_miou"]["crf"][str(w)] == pytest.approx(band["crf"])
        assert res["crf_gain"]["trimap_miou"][str(w)] == pytest.approx(band["crf"] - band["net"])
    # the per-class detail is test_net's own JSON: the summary must agree with it
    full = json.loads((out / "test" / "results.json").read_text())
    assert full["crf_source"] == "dense_crf" and full["images"] == res["val_images"]
    assert full["net"]["miou"] == res["net"]["miou"]
    assert full["crf"]["miou"] == res["crf"]["miou"]
    log = (out / "train.log").read_text()
    assert "Iteration 0, loss = " in log and "Optimization Done." in log
    md = (out / "results.md").read_text()
    assert "| DeepLab-CRF (net + CRF) | " in md and "| CRF gain (points) | " in md
    assert "bi_xy_std 20" in md
    assert f"{100 * res['net']['miou']:.2f}" in md
    # four rows of four panels: input, ground truth, net, net + CRF (96..128 px each)
    w, h = Image.open(out / "examples.png").size
    assert 4 * 96 <= w <= 4 * 128 + 3 * 4 and 4 * 96 <= h <= 4 * (128 + 14 + 4)
    assert Image.open(out / "trimap.png").size[0] > 100


def test_demo_keeps_matching_data(tmp_path, capsys):
    args = argparse.Namespace(num_train=3, num_val=2, seed=1)
    out = str(tmp_path)
    data, params = demo.make_data(out, args)
    stamp = os.path.getmtime(os.path.join(data, "JPEGImages", "train_000000.jpg"))
    assert sorted(os.listdir(os.path.join(out, "list"))) == sorted(os.listdir(
        os.path.join(data, "list")))
    capsys.readouterr()
    demo.make_data(out, args)
    assert "keeping" in capsys.readouterr().out
    assert os.path.getmtime(os.path.join(data, "JPEGImages", "train_000000.jpg")) == stamp
    demo.make_data(out, argparse.Namespace(num_train=4, num_val=2, seed=1))
    assert len(os.listdir(os.path.join(data, "JPEGImages"))) == 6
    assert "writing" in capsys.readouterr().out
