"""tools/demo.py --quick end to end (demo.QUICK: a short training on a small synthetic set): every
output is written, results.json holds the table's numbers, training has left the all-background
state, the dense CRF raises the mean IoU near object boundaries, and the synthetic set is kept on
a rerun with the same parameters.  The reported mIoU (overall and in the trimap bands) and the
CRF's gain are checked against a naive count over the saved label PNGs."""
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
    assert demo.main(["--quick", "--out", str(out), "--seed", "3"]) == 0
    iters = demo.QUICK["iterations"]
    for name in ("results.json", "results.md", "trimap.png", "examples.png", "train.log",
                 "train_log.png", "test/results.json", f"model/demo/train_iter_{iters}.caffemodel",
                 "data/list/val.txt", "list/train_aug.txt"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())
    assert res["seed"] == 3 and res["quick"] is True and res["iterations"] == iters
    assert res["val_images"] == demo.QUICK["num_val"]
    assert res["crf_params"] == demo.DEMO_CRF
    # out of the all-background state: the net finds objects of more than one class ...
    net_labels = [np.asarray(Image.open(p)) for p in sorted((out / "test" / "labels").iterdir())]
    assert len(np.unique(np.concatenate([lab.ravel() for lab in net_labels]))) >= 3
    assert res["net"]["miou"] > 0.3, res["net"]
    # ... and the CRF sharpens its boundaries (the paper's Figure 5)
    for w in ("1", "3"):
        assert res["crf_gain"]["trimap_miou"][w] > 0.0, res["crf_gain"]
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
    assert "Test net output #" in log        # the solver's test net: train_log.png's test curves
    for stage in ("data", "train", "test", "total"):
        assert res["seconds"][stage]["wall"] > 0 and res["seconds"][stage]["cpu"] > 0
    md = (out / "results.md").read_text()
    assert "| DeepLab-CRF (net + CRF) | " in md and "| CRF gain (points) | " in md
    assert f"bi_xy_std {demo.DEMO_CRF['bi_xy_std']:g}" in md
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


def test_demo_crf_flags():
    args = demo.parse_args(["--bi-xy-std", "25", "--bi-rgb-std", "7"])
    assert args.crf == dict(demo.DEMO_CRF, bi_xy_std=25.0, bi_rgb_std=7.0)
    assert (args.num_train, args.iterations) == (demo.FULL["num_train"], demo.FULL["iterations"])


def test_demo_crf_matches_test_crf_prototxt():
    """prototxt/demo/test_crf.prototxt (a user's DeepLab run) holds the demo's CRF."""
    text = open(os.path.join(demo.PROTO, "test_crf.prototxt")).read()
    for key in ("bi_w", "bi_xy_std", "bi_rgb_std", "pos_w", "pos_xy_std", "max_iter"):
        assert f"{key}: {demo.DEMO_CRF[key]:g}\n" in text, key
