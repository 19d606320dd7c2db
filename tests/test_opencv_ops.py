"""OpenCV's uint8 INTER_LINEAR resize and IMREAD_GRAYSCALE as DeepLab's ImageSegData gets them
(data/opencv.py), against cv2 itself when it is installed and against values cv2 4.10 gave;
ImageSegData's new_height/new_width, is_color: false and ignore_label saturation."""
import numpy as np
import pytest
import torch
from PIL import Image

import deeplab_caffe as dc
from deeplab_caffe.data.opencv import resize_linear
from deeplab_caffe.data.image_seg_data import read_image_bgr

try:
    import cv2
except ImportError:     # the golden values below still run
    cv2 = None
needs_cv2 = pytest.mark.skipif(cv2 is None, reason="cv2 (opencv-python) not installed")


def pattern(h, w):
    i, j = np.mgrid[0:h, 0:w]
    return ((i * 37 + j * 101) % 256).astype(np.uint8)


def pattern_rgb(h, w):
    g = pattern(h, w)
    return np.stack([g, 255 - g, ((g.astype(int) * 3) % 256).astype(np.uint8)], -1)


# cv2 4.10: cv2.resize(pattern(5, 7), (3, 8)) and (11, 3), INTER_LINEAR.
CV2_5x7_TO_8x3 = [[67, 47, 197], [83, 63, 139], [107, 86, 66], [130, 109, 89],
                  [153, 132, 112], [176, 156, 135], [199, 179, 158], [215, 195, 175]]
CV2_5x7_TO_3x11 = [[12, 58, 122, 187, 158, 59, 123, 165, 174, 138, 106],
                   [74, 120, 161, 62, 57, 121, 185, 180, 81, 122, 168],
                   [136, 181, 223, 124, 118, 182, 84, 55, 119, 184, 230]]
# cv2 4.10: imread(IMREAD_GRAYSCALE) of pattern_rgb(5, 7) written as PNG (libpng's conversion)
# and as BMP (cvtColor's).
CV2_GREY_PNG = [[149, 125, 102, 152, 128, 104, 125], [151, 127, 104, 154, 101, 151, 127],
                [153, 100, 150, 127, 103, 153, 129], [126, 102, 152, 129, 149, 126, 102],
                [128, 104, 125, 101, 151, 128, 104]]
CV2_GREY_BMP = [[150, 126, 102, 152, 128, 105, 126], [152, 128, 104, 154, 101, 151, 128],
                [154, 101, 151, 127, 103, 153, 130], [126, 103, 153, 129, 150, 126, 102],
                [128, 105, 126, 102, 152, 128, 104]]


def test_resize_matches_values_cv2_gave():
    assert resize_linear(pattern(5, 7), 8, 3).tolist() == CV2_5x7_TO_8x3
    assert resize_linear(pattern(5, 7), 3, 11).tolist() == CV2_5x7_TO_3x11


@needs_cv2
@pytest.mark.parametrize("channels", [1, 3])
def test_resize_matches_cv2_on_every_pixel(channels):
    rng = np.random.default_rng(channels)
    sizes = [(40, 60, 20, 30), (281, 375, 321, 321), (7, 9, 14, 18), (2, 2, 1, 1), (1, 5, 3, 2)]
    sizes += [tuple(int(v) for v in rng.integers(1, 90, 4)) for _ in range(60)]
    for H, W, h, w in sizes:
        shape = (H, W) if channels == 1 else (H, W, 3)
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        ref = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(resize_linear(img, h, w), ref), (H, W, h, w)


@pytest.mark.parametrize("fmt,expect", [("png", CV2_GREY_PNG), ("bmp", CV2_GREY_BMP)])
def test_grey_matches_values_cv2_gave(tmp_path, fmt, expect):
    path = tmp_path / f"g.{fmt}"
    Image.fromarray(pattern_rgb(5, 7)).save(path)
    assert read_image_bgr(str(path), is_color=False)[:, :, 0].tolist() == expect


@needs_cv2
@pytest.mark.parametrize("fmt", ["png", "jpg", "bmp"])
def test_grey_matches_cv2_imread(tmp_path, fmt):
    rng = np.random.default_rng(3)
    path = tmp_path / f"a.{fmt}"
    Image.fromarray(rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)).save(path)
    ref = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(read_image_bgr(str(path), is_color=False)[:, :, 0], ref)


def _seg_net(tmp_path, image_param, transform_param=""):
    rgb = pattern_rgb(5, 7)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    label = np.zeros((5, 7), np.uint8)
    label[:, 4:] = 20          # an edge for the bilinear resize to blend
    Image.fromarray(label).save(tmp_path / "l.png")
    (tmp_path / "list.txt").write_text("a.png l.png\n")
    text = f"""
    layers {{ name: "data" type: IMAGE_SEG_DATA top: "data" top: "label"
      image_data_param {{ root_folder: "{tmp_path}/" source: "{tmp_path}/list.txt"
                          batch_size: 1 label_type: PIXEL {image_param} }}
      transform_param {{ {transform_param} }} }}"""
    net = dc.Net(text, phase="TEST")
    net.forward()
    return rgb, label, net


def test_new_size_resizes_image_and_label_bilinearly(tmp_path):
    rgb, label, net = _seg_net(tmp_path, "new_height: 8 new_width: 11")
    data = net.blobs["data"][0].permute(1, 2, 0).numpy()
    assert np.array_equal(data, resize_linear(rgb[:, :, ::-1], 8, 11).astype(np.float32))
    lab = net.blobs["label"][0, 0].numpy()
    assert np.array_equal(lab, resize_linear(label, 8, 11).astype(np.float32))
    # The C++ blends label indices at an edge (not nearest): values other than 0 and 20.
    assert set(np.unique(lab).tolist()) - {0.0, 20.0}


def test_is_color_false_reads_grey_as_opencv(tmp_path):
    _, _, net = _seg_net(tmp_path, "is_color: false")
    assert net.blobs["data"].shape == (1, 1, 5, 7)
    assert net.blobs["data"][0, 0].tolist() == [[float(v) for v in r] for r in CV2_GREY_PNG]


@pytest.mark.parametrize("ignore,pad", [(300, 255.0), (-1, 0.0), (254, 254.0)])
def test_ignore_label_saturates_to_uint8_in_the_padding(tmp_path, ignore, pad):
    _, _, net = _seg_net(tmp_path, f"ignore_label: {ignore}", "crop_size: 9")
    lab = net.blobs["label"][0, 0]
    assert torch.all(lab[:, 7:] == pad) and torch.all(lab[5:, :] == pad)
