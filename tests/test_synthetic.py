"""Synthetic VOC-style set (determinism, layout, label/image consistency) and the VOC helpers."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from deeplab_caffe.data.synthetic import class_colours, make_synthetic_voc, render_sample, \
    void_band
from deeplab_caffe.data.voc import check_label_image, load_label, save_label, \
    scan_label_list, voc_palette
from deeplab_caffe.errors import CaffeError
from deeplab_caffe.layers.base import get_layer_class
from deeplab_caffe.proto.message import Message
from deeplab_caffe.proto.spec import LayerSpec


def read_all(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def test_deterministic_and_layout(tmp_path):
    a = make_synthetic_voc(tmp_path / "a", num_train=6, num_val=3, size=(40, 50), seed=4)
    b = make_synthetic_voc(tmp_path / "b", num_train=6, num_val=3, size=(40, 50), seed=4)
    c = make_synthetic_voc(tmp_path / "c", num_train=6, num_val=3, size=(40, 50), seed=5)
    files_a, files_b, files_c = read_all(a.root), read_all(b.root), read_all(c.root)
    assert files_a == files_b
    assert files_a["JPEGImages/train_000000.jpg"] != files_c["JPEGImages/train_000000.jpg"]
    assert len([k for k in files_a if k.startswith("JPEGImages")]) == 9
    train = open(a.lists["train_aug"]).read().splitlines()
    assert train[0] == "/JPEGImages/train_000000.jpg /SegmentationClassAug/train_000000.png"
    assert len(train) == 6
    assert open(a.lists["val_id"]).read().splitlines() == ["val_000000", "val_000001",
                                                           "val_000002"]
    for line in open(a.lists["val"]).read().splitlines():
        img, lab = line.split()
        assert Image.open(a.root + img).size == (50, 40)
        assert Image.open(a.root + lab).mode == "L"


def test_image_depends_only_on_seed_split_index(tmp_path):
    small = make_synthetic_voc(tmp_path / "s", num_train=2, num_val=1, seed=9, image_format="png")
    big = make_synthetic_voc(tmp_path / "b", num_train=4, num_val=0, seed=9, image_format="png")
    for i in range(2):
        rel = f"JPEGImages/train_{i:06d}.png"
        assert read_all(small.root)[rel] == read_all(big.root)[rel]


def test_size_range_respected(tmp_path):
    out = make_synthetic_voc(tmp_path, num_train=12, num_val=0, size=((20, 30), (40, 44)), seed=1)
    sizes = {Image.open(os.path.join(out.root, "JPEGImages", i + ".jpg")).size
             for i in out.ids["train"]}
    assert all(40 <= w <= 44 and 20 <= h <= 30 for w, h in sizes) and len(sizes) > 1
    with pytest.raises(CaffeError, match="size"):
        make_synthetic_voc(tmp_path, 1, 0, size="big")


def test_void_band_exact():
    lab = np.zeros((6, 8), np.uint8)
    lab[2:4, 3:6] = 4
    band0 = void_band(lab, radius=0)
    expect = np.zeros_like(band0)
    expect[1:5, 3:6] = True     # pixels just above/below the object and its top/bottom rows
    expect[2:4, 2:7] = True     # pixels just left/right and its left/right columns
    assert np.array_equal(band0, expect)
    band1 = void_band(lab, radius=1)
    grown = np.zeros_like(expect)
    for y, x in zip(*np.nonzero(expect)):
        grown[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = True
    assert np.array_equal(band1, grown)


def test_labels_and_colours_consistent():
    num_classes = 6
    colours = class_colours(num_classes)
    rng = np.random.default_rng(0)
    for _ in range(5):
        image, label, clean = render_sample(rng, 64, 72, num_classes, colours)
        assert set(np.unique(clean)) <= set(range(num_classes))
        assert np.array_equal(label == 255, void_band(clean, 1))
        assert np.array_equal(label[label != 255], clean[label != 255])
        for c in np.unique(clean)[1:]:
            mean = image[clean == c].astype(float).mean(0)
            # per-image jitter <= 18 per channel, textures and noise are zero-mean
            assert np.abs(mean - colours[c]).max() < 30, (c, mean, colours[c])
        # every boundary between two labels is void, as in VOC
        assert (label[:, 1:][clean[:, 1:] != clean[:, :-1]] == 255).all()


def test_imagesegdata_reads_synthetic_set(tmp_path):
    out = make_synthetic_voc(tmp_path, num_train=4, num_val=0, size=(33, 37), num_classes=5,
                             seed=2)
    msg = Message("LayerParameter", {
        "image_data_param": Message("ImageDataParameter", {
            "source": out.lists["train_aug"], "root_folder": out.root, "batch_size": 4,
            "label_type": "PIXEL", "shuffle": True}),
        "transform_param": Message("TransformationParameter", {
            "crop_size": 41, "mean_value": [104.008, 116.669, 122.675], "mirror": True})})
    spec = LayerSpec(name="data", type="ImageSegData", top=["data", "label", "data_dim"],
                     message=msg)
    layer = get_layer_class("ImageSegData")(spec, "TRAIN")
    assert layer.setup([]) == [(4, 3, 41, 41), (4, 1, 41, 41), (4, 1, 1, 2)]
    data, label, dim = layer()
    values = set(torch.unique(label).tolist())
    assert values <= {0.0, 1.0, 2.0, 3.0, 4.0, 255.0} and 255.0 in values
    assert (dim == torch.tensor([33.0, 37.0])).all()


def test_voc_palette_known_colours():
    p = voc_palette(256)
    assert p.shape == (256, 3) and p.dtype == np.uint8
    assert p[0].tolist() == [0, 0, 0]
    assert p[1].tolist() == [128, 0, 0]
    assert p[2].tolist() == [0, 128, 0]
    assert p[4].tolist() == [0, 0, 128]
    assert p[15].tolist() == [192, 128, 128]      # person
    assert p[20].tolist() == [0, 64, 128]         # tvmonitor
    assert p[255].tolist() == [224, 224, 192]     # void
    assert len({tuple(c) for c in p}) == 256


def test_label_png_checks(tmp_path):
    lab = np.array([[0, 1, 255], [20, 3, 0]], np.uint8)
    save_label(tmp_path / "p.png", lab, palette=True)
    save_label(tmp_path / "l.png", lab, palette=False)
    assert Image.open(tmp_path / "p.png").mode == "P"
    assert np.array_equal(load_label(tmp_path / "p.png"), lab)
    assert np.array_equal(load_label(tmp_path / "l.png"), lab)
    with pytest.raises(CaffeError, match="palette"):
        load_label(tmp_path / "p.png", allow_palette=False)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(CaffeError, match=r"rgb\.png.*RGB"):
        load_label(tmp_path / "rgb.png")
    with pytest.raises(CaffeError, match="not found"):
        load_label(tmp_path / "missing.png")
    check_label_image(Image.open(tmp_path / "l.png"), "l.png", allow_palette=False)


def test_scan_label_list(tmp_path):
    out = make_synthetic_voc(tmp_path, num_train=3, num_val=0, size=24, num_classes=4, seed=0)
    assert scan_label_list(out.lists["train_aug"], out.root, num_classes=4) == []
    save_label(tmp_path / "SegmentationClassAug" / "train_000001.png",
               np.array([[0, 9], [255, 1]], np.uint8), palette=False)
    save_label(tmp_path / "SegmentationClassAug" / "train_000002.png",
               np.zeros((2, 2), np.uint8), palette=True)
    problems = scan_label_list(out.lists["train_aug"], out.root, num_classes=4)
    assert len(problems) == 2
    assert problems[0].startswith(out.lists["train_aug"] + ":2:") and "[9]" in problems[0]
    assert "palette" in problems[1]
