"""deeplab_caffe.eval: confusion matrix, VOC scores, trimap bands, palette, plots."""
import numpy as np
import pytest
import torch
from PIL import Image

from deeplab_caffe.errors import CaffeError
from deeplab_caffe.eval import (ConfusionMeter, colourize, confusion_matrix, evaluate,
                                format_table, overlay, panel, result_json, scores, trimap_mask,
                                trimap_miou, void_distance)
from deeplab_caffe.eval.plots import heatmap, line_plot
from deeplab_caffe.layers.seg_accuracy import seg_metrics

# Worked by hand: (gt, pred) pairs (0,0) (0,1) (1,1) (1,2) (2,2); (255, 0) is ignored.
LABEL = np.array([[0, 0, 1], [1, 2, 255]])
PRED = np.array([[0, 1, 1], [2, 2, 0]])
CONF = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_confusion_matrix_by_hand():
    conf = confusion_matrix(PRED, LABEL, 3)
    assert conf.dtype == np.int64
    np.testing.assert_array_equal(conf, CONF)
    # rows are the ground truth: transposing the roles transposes the matrix
    swapped = confusion_matrix(np.where(LABEL == 255, 0, LABEL), np.where(LABEL == 255, 255, PRED),
                               3)
    np.testing.assert_array_equal(swapped, CONF.T)


def test_confusion_matrix_torch_and_float_labels():
    conf = confusion_matrix(torch.from_numpy(PRED), torch.from_numpy(LABEL).float(), 3)
    assert isinstance(conf, torch.Tensor) and conf.dtype == torch.int64
    np.testing.assert_array_equal(conf.numpy(), CONF)
    # numpy pred with a torch label: numpy back
    np.testing.assert_array_equal(confusion_matrix(PRED, torch.from_numpy(LABEL), 3), CONF)


def test_confusion_matrix_random_against_loops():
    rng = np.random.default_rng(3)
    for _ in range(5):
        c = int(rng.integers(2, 6))
        shape = tuple(int(v) for v in rng.integers(1, 9, size=int(rng.integers(1, 4))))
        label = rng.integers(0, c, shape)
        label[rng.random(shape) < 0.2] = 255
        pred = rng.integers(0, c, shape)
        want = np.zeros((c, c), np.int64)
        for g, p in zip(label.ravel(), pred.ravel()):
            if g != 255:
                want[g, p] += 1
        np.testing.assert_array_equal(confusion_matrix(pred, label, c), want)


def test_confusion_matrix_errors_and_ignore():
    with pytest.raises(CaffeError, match=r"label has values \[5\] outside 0..2"):
        confusion_matrix(PRED, np.where(LABEL == 2, 5, LABEL), 3)
    with pytest.raises(CaffeError, match=r"pred has values \[3\]"):
        confusion_matrix(np.where(PRED == 2, 3, PRED), LABEL, 3)
    with pytest.raises(CaffeError, match="shape"):
        confusion_matrix(PRED[:1], LABEL, 3)
    with pytest.raises(CaffeError, match="fractional"):
        confusion_matrix(PRED + 0.5, LABEL, 3)
    # a bad prediction at an ignored pixel does not matter; another ignore value can be chosen
    pred = PRED.copy()
    pred[1, 2] = 99
    np.testing.assert_array_equal(confusion_matrix(pred, LABEL, 3), CONF)
    lab = np.where(LABEL == 255, 0, LABEL)
    lab[0, 0] = 7
    conf = confusion_matrix(PRED, lab, 3, ignore_label=7)
    assert conf.sum() == 5 and conf[0, 0] == 1 and conf[0, 1] == 1   # (0,0) dropped, (0,0) added
    with pytest.raises(CaffeError, match="255"):
        confusion_matrix(PRED, LABEL, 3, ignore_label=None)


def test_scores_by_hand():
    s = scores(CONF)
    assert s["pixel_acc"] == pytest.approx(3 / 5, abs=0)
    np.testing.assert_allclose(s["acc"], [1 / 2, 1 / 2, 1], rtol=0, atol=0)
    assert s["mean_acc"] == pytest.approx(2 / 3, rel=1e-15)
    np.testing.assert_allclose(s["iou"], [1 / 2, 1 / 3, 1 / 2], rtol=1e-15)
    assert s["miou"] == pytest.approx(4 / 9, rel=1e-15)
    # f.w. IU: GT frequencies 2/5, 2/5, 1/5
    assert s["freq_iou"] == pytest.approx(2 / 5 * 1 / 2 + 2 / 5 * 1 / 3 + 1 / 5 * 1 / 2)


def test_scores_absent_class_conventions():
    conf = np.zeros((4, 4), np.int64)
    conf[:3, :3] = CONF                      # class 3 is in neither GT nor prediction
    skip = scores(conf)
    assert np.isnan(skip["iou"][3]) and skip["miou"] == pytest.approx(4 / 9)
    assert not skip["present"][3] and skip["present"][:3].all()
    assert scores(conf, "zero")["miou"] == pytest.approx((4 / 3) / 4)
    one = scores(conf, "one")
    assert one["miou"] == pytest.approx((4 / 3 + 1) / 4)
    # "one" is DeepLab's SEG_ACCURACY convention
    pix, recall, jac = seg_metrics(torch.from_numpy(conf))
    assert one["miou"] == pytest.approx(float(jac), rel=1e-12)
    assert one["mean_acc"] == pytest.approx(float(recall), rel=1e-12)
    assert one["pixel_acc"] == pytest.approx(float(pix), rel=1e-12)
    # a class predicted but never in the GT counts, with IoU 0
    conf2 = conf.copy()
    conf2[0, 3] = 1
    s = scores(conf2)
    assert s["iou"][3] == 0 and np.isnan(s["acc"][3])
    assert s["miou"] == pytest.approx((1 / 3 + 1 / 3 + 1 / 2 + 0) / 4)
    with pytest.raises(CaffeError, match="absent"):
        scores(conf, "all")
    with pytest.raises(CaffeError, match="square"):
        scores(np.zeros((2, 3)))
    empty = scores(np.zeros((2, 2), np.int64))
    assert np.isnan(empty["pixel_acc"]) and np.isnan(empty["miou"])


def test_meter_sums_over_images_and_json():
    meter = ConfusionMeter(3)
    meter.add(PRED, LABEL)
    meter.add(PRED[:1], LABEL[:1])
    np.testing.assert_array_equal(meter.conf, CONF + confusion_matrix(PRED[:1], LABEL[:1], 3))
    ev = evaluate([PRED, PRED[:1]], [LABEL, LABEL[:1]], 3)
    np.testing.assert_array_equal(ev["conf"], meter.conf)
    assert ev["images"] == 2 and ev["miou"] == meter.scores()["miou"]
    conf = np.zeros((4, 4), np.int64)
    conf[:3, :3] = CONF
    js = result_json(scores(conf), ["a", "b", "c", "d"])
    assert js["iou"][3] is None and js["class_names"][3] == "d"
    text = format_table({"net": scores(conf)}, ["a", "b", "c", "d"])
    assert "mean IoU" in text and "44.44" in text and "n/a" in text


# -- trimap ---------------------------------------------------------------------------------------
def _centre_void():
    lab = np.zeros((5, 5), np.uint8)
    lab[2, 2] = 255
    return lab


def test_trimap_exact_masks():
    lab = _centre_void()
    w1 = np.array([[0, 0, 0, 0, 0],
                   [0, 0, 1, 0, 0],
                   [0, 1, 1, 1, 0],
                   [0, 0, 1, 0, 0],
                   [0, 0, 0, 0, 0]], bool)
    w2 = np.array([[0, 0, 1, 0, 0],
                   [0, 1, 1, 1, 0],
                   [1, 1, 1, 1, 1],
                   [0, 1, 1, 1, 0],
                   [0, 0, 1, 0, 0]], bool)
    np.testing.assert_array_equal(trimap_mask(lab, 1), w1)
    np.testing.assert_array_equal(trimap_mask(lab, 2), w2)
    np.testing.assert_array_equal(trimap_mask(lab, 0), lab == 255)
    cb1 = np.zeros((5, 5), bool)
    cb1[1:4, 1:4] = True
    np.testing.assert_array_equal(trimap_mask(lab, 1, metric="chessboard"), cb1)
    assert trimap_mask(lab, 2, metric="chessboard").all()
    # a void column on the image edge: the band is the first width+1 columns
    edge = np.ones((4, 6), np.uint8)
    edge[:, 0] = 255
    for w in (1, 2):
        want = np.zeros((4, 6), bool)
        want[:, :w + 1] = True
        np.testing.assert_array_equal(trimap_mask(torch.from_numpy(edge), w), want)
    assert not trimap_mask(np.zeros((3, 4)), 5).any()
    with pytest.raises(CaffeError, match="metric"):
        trimap_mask(lab, 1, metric="manhattan")


def test_void_distance_against_brute_force():
    rng = np.random.default_rng(11)
    for _ in range(4):
        h, w = (int(v) for v in rng.integers(3, 16, 2))
        lab = rng.integers(0, 3, (h, w))
        lab[rng.random((h, w)) < 0.06] = 255
        lab[int(rng.integers(0, h)), int(rng.integers(0, w))] = 255
        vy, vx = np.nonzero(lab == 255)
        yy, xx = np.mgrid[0:h, 0:w]
        d2 = ((yy[..., None] - vy) ** 2 + (xx[..., None] - vx) ** 2).min(-1)
        cheb = np.maximum(abs(yy[..., None] - vy), abs(xx[..., None] - vx)).min(-1)
        for cap in (1, 3, 6):
            got = void_distance(lab, cap)
            want = np.where(np.sqrt(d2) <= cap, np.sqrt(d2), np.inf)
            np.testing.assert_array_equal(got, want)
            got = void_distance(lab, cap, metric="chessboard")
            np.testing.assert_array_equal(got, np.where(cheb <= cap, cheb, np.inf))


def test_trimap_miou_by_hand():
    label = np.array([[0, 0, 255, 1, 1, 1]])
    pred = np.array([[1, 0, 0, 1, 1, 0]])
    # w1: cols 1..3 -> (0,0) (1,1): both IoU 1.  w2: cols 0..4 -> conf [[1,1],[0,2]].
    # w3: all -> conf [[1,1],[1,2]]: IoU 1/3 and 1/2.
    got = trimap_miou([pred], [label], widths=[1, 2, 3], num_classes=2)
    assert got == pytest.approx({1: 1.0, 2: (1 / 2 + 2 / 3) / 2, 3: (1 / 3 + 1 / 2) / 2})


# -- pictures --------------------------------------------------------------------------------------
def test_colourize_and_overlay():
    lab = np.array([[0, 1, 15], [255, 20, 2]], np.uint8)
    rgb = colourize(lab)
    # The VOC devkit's colours: background black, aeroplane (128,0,0), person (192,128,128),
    # tvmonitor (0,64,128), bicycle (0,128,0), void (224,224,192).
    want = [[(0, 0, 0), (128, 0, 0), (192, 128, 128)], [(224, 224, 192), (0, 64, 128),
                                                         (0, 128, 0)]]
    np.testing.assert_array_equal(rgb, np.array(want, np.uint8))
    img = np.full((2, 3, 3), 100, np.uint8)
    ov = overlay(img, lab, alpha=0.25)
    assert (ov[0, 0] == 100).all() and (ov[1, 0] == 100).all()   # background and void kept
    np.testing.assert_array_equal(ov[0, 1], [round(0.75 * 100 + 0.25 * 128), 75, 75])
    with pytest.raises(CaffeError, match="match"):
        overlay(img, lab[:1])
    p = panel([img, rgb], ["a", "b"], gap=2, title_height=10)
    assert p.size == (3 + 2 + 3, 2 + 10)


def test_plots_write_pngs(tmp_path):
    path = tmp_path / "line.png"
    line_plot({"net": ([1, 2, 3], [0.5, 0.6, float("nan")]), "crf": ([1, 2, 3], [0.6, 0.7, 0.8])},
              path, "t", "width", "mIoU", size=(400, 300))
    im = np.asarray(Image.open(path).convert("RGB"))
    assert im.shape == (300, 400, 3)
    for colour in ((31, 119, 180), (214, 39, 40)):        # both series are drawn
        assert (im == colour).all(-1).sum() > 20
    path = tmp_path / "heat.png"
    heatmap([("w 5", [50, 60], [3, 4, 5], [[1, 2, 3], [4, 5, np.nan]])], path, "xy", "rgb", "g")
    assert Image.open(path).size[0] > 100
    with pytest.raises(CaffeError, match="do not match"):
        heatmap([("w", [1], [1, 2], [[1, 2, 3]])], path)


def test_trimap_meter_matches_band_by_band():
    rng = np.random.default_rng(7)
    label = rng.integers(0, 4, (30, 40))
    label[rng.random((30, 40)) < 0.03] = 255
    pred = rng.integers(0, 4, (30, 40))
    from deeplab_caffe.eval import TrimapMeter
    widths = [6, 1, 3, 2]                             # any order
    meter = TrimapMeter(4, widths)
    meter.add(pred, label)
    meter.add(torch.from_numpy(pred[:20]), torch.from_numpy(label[:20]))
    for k, w in enumerate(widths):
        want = sum(confusion_matrix(p[trimap_mask(g, w)], g[trimap_mask(g, w)], 4)
                   for p, g in ((pred, label), (pred[:20], label[:20])))
        np.testing.assert_array_equal(meter.confs[k], want)
    bad = pred.copy()
    bad[label != 255] = 9
    with pytest.raises(CaffeError, match=r"pred has values \[9\]"):
        meter.add(bad, label)
