"""tools/port_caffemodel.py and the VGG-16 -> DeepLab fc6/fc7 decimation."""
import os

import numpy as np
import pytest
import torch

from deeplab_caffe.cli import port_caffemodel
from deeplab_caffe.errors import CaffeError
from deeplab_caffe.io import read_caffemodel, write_caffemodel
from deeplab_caffe.io.vgg16 import (VARIANTS, VGG16_CONV, decimate_vgg16_fc, tap_indices,
                                    variant_from_path)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "..", "shared", "fixtures", "caffe")
LENET_V1 = os.path.join(FIX, "v1", "lenet_iter_10000.caffemodel")
needs_fixtures = pytest.mark.skipif(not os.path.isdir(FIX), reason="no ../shared/fixtures/caffe")


@needs_fixtures
def test_caffemodel_to_pt(tmp_path, capsys):
    out = tmp_path / "lenet.pt"
    assert port_caffemodel.main([LENET_V1, str(out)]) == 0
    text = capsys.readouterr().out
    assert "conv1  Convolution      20x1x5x5, 20       520" in text
    assert "ip1    InnerProduct     500x800, 500   400,500" in text
    assert text.rstrip().endswith("431,080")       # 520 + 25,050 + 400,500 + 5,010
    sd = torch.load(out, weights_only=True)
    m = read_caffemodel(LENET_V1)
    assert sorted(sd) == sorted(m.state_dict())
    for key, arr in m.state_dict().items():
        assert sd[key].dtype == torch.float32 and torch.equal(sd[key], torch.from_numpy(arr))


@needs_fixtures
def test_v1_v2_conversion_cli(tmp_path, capsys):
    v2, v1 = tmp_path / "a_v2.caffemodel", tmp_path / "b_v1.caffemodel"
    assert port_caffemodel.main([LENET_V1, str(v2), "--quiet"]) == 0
    assert port_caffemodel.main([str(v2), str(v1), "--format", "v1", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert read_caffemodel(v2).format == "v2" and read_caffemodel(v1).format == "v1"
    assert v1.read_bytes() == open(LENET_V1, "rb").read()   # V1 -> V2 -> V1 is lossless here
    pt = tmp_path / "c.pt"
    assert port_caffemodel.main([str(v2), str(pt), "--quiet"]) == 0
    assert port_caffemodel.main([str(pt), str(tmp_path / "d.caffemodel"), "--quiet"]) == 0   # .pt input
    assert [l.name for l in read_caffemodel(tmp_path / "d.caffemodel").layers] == \
        ["conv1", "conv2", "ip1", "ip2"]


def test_cli_errors(tmp_path, capsys):
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(b"\x12\xff\xff\x03")
    assert port_caffemodel.main([str(bad), str(tmp_path / "o.pt")]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "byte" in err and "bad.caffemodel" in err
    assert port_caffemodel.main([str(bad), str(tmp_path / "o.pt"), "--from-vgg16"]) == 1
    assert not (tmp_path / "o.pt").exists()


def naive_decimate(fc6_w, fc6_b, fc7_w, fc7_b, taps, channels):
    n = fc6_b.size
    c_in = fc6_w.shape[1] // 49
    keep = list(range(0, n, n // channels))
    k = len(taps)
    w6 = np.zeros((channels, c_in, k, k), np.float32)
    for a, o in enumerate(keep):
        for c in range(c_in):
            for i, ti in enumerate(taps):
                for j, tj in enumerate(taps):
                    w6[a, c, i, j] = fc6_w[o, c * 49 + ti * 7 + tj]   # Caffe's (C, H, W) flatten
    w7 = np.zeros((channels, channels, 1, 1), np.float32)
    for a, o in enumerate(keep):
        for b, i in enumerate(keep):
            w7[a, b, 0, 0] = fc7_w[o, i]
    return w6, fc6_b[keep], w7, fc7_b[keep]


@pytest.mark.parametrize("kernel,channels,n,c_in", [(3, 4, 16, 2), (4, 8, 8, 3), (7, 2, 8, 1),
                                                    (3, 16, 16, 1)])
def test_decimation_matches_naive(kernel, channels, n, c_in):
    rng = np.random.default_rng(kernel * 100 + channels)
    fc6_w = rng.standard_normal((n, c_in * 49)).astype(np.float32)
    fc6_b, fc7_b = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
    fc7_w = rng.standard_normal((n, n)).astype(np.float32)
    got = decimate_vgg16_fc(fc6_w, fc6_b, fc7_w, fc7_b, kernel, channels)
    want = naive_decimate(fc6_w, fc6_b, fc7_w, fc7_b, tap_indices(kernel), channels)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == np.float32 and np.array_equal(g, w)
    # legacy-shaped and 4-D inputs give the same result
    again = decimate_vgg16_fc(fc6_w.reshape(1, 1, n, -1), fc6_b.reshape(1, 1, 1, n),
                              fc7_w.reshape(n, n, 1, 1), fc7_b, kernel, channels)
    assert all(np.array_equal(a, b) for a, b in zip(got, again))


def test_taps_and_argument_errors():
    assert tap_indices(3) == (0, 3, 6) and tap_indices(4) == (0, 2, 4, 6)
    assert tap_indices(7) == tuple(range(7)) and tap_indices(3, [2, 3, 4]) == (2, 3, 4)
    # 'rf' taps span the whole 7x7 support: effective extent (k-1)*hole+1 at the hole below
    # equals the 7x7 filter's 6*4+1 = 25 input-stride-4 positions.
    for variant, (k, _, hole) in VARIANTS.items():
        if variant in ("largefov", "4x4", "7x7"):
            assert (k - 1) * hole + 1 == 25 and tap_indices(k)[-1] - tap_indices(k)[0] == 6
    for taps, match in [([0, 1], "3 distinct"), ([0, 3, 9], "0..6"), ("center", "'rf'")]:
        with pytest.raises(CaffeError, match=match):
            tap_indices(3, taps)
    z = np.zeros
    with pytest.raises(CaffeError, match="must divide"):
        decimate_vgg16_fc(z((8, 49)), z(8), z((8, 8)), z(8), 3, 3)
    with pytest.raises(CaffeError, match="not \\(8, C\\*7\\*7\\)"):
        decimate_vgg16_fc(z((8, 50)), z(8), z((8, 8)), z(8), 3, 4)
    with pytest.raises(CaffeError, match="fc7 weights"):
        decimate_vgg16_fc(z((8, 49)), z(8), z((8, 9)), z(8), 3, 4)
    with pytest.raises(CaffeError, match="channel_offset"):
        decimate_vgg16_fc(z((8, 49)), z(8), z((8, 8)), z(8), 3, 4, channel_offset=2)
    assert variant_from_path("prototxt/DeepLab-LargeFOV/train.prototxt") == "largefov"
    assert variant_from_path("x/DeepLab/test.prototxt") == "deeplab"
    with pytest.raises(CaffeError, match="cannot tell the DeepLab variant"):
        variant_from_path("x/mine/train.prototxt")


@pytest.mark.parametrize("variant,millions", [("7x7", 134.3), ("deeplab", 65.1), ("4x4", 65.1),
                                              ("largefov", 20.5)])
def test_variant_parameter_counts_match_table2(variant, millions):
    """Paper Table 2 (#params incl. a 21-way fc8): VGG-16 convs + decimated fc6/fc7 + fc8."""
    vgg_in = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512]
    vgg_out = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    conv = sum(o * i * 9 + o for i, o in zip(vgg_in, vgg_out))
    k, ch, _ = VARIANTS[variant]
    total = conv + ch * 512 * k * k + ch + ch * ch + ch + 21 * ch + 21
    assert round(total / 1e6, 1) == millions


def fake_vgg16(path, n=2048, c_in=2, seed=0):
    """A tiny stand-in with VGG-16's layer names and layout (conv5_3 -> fc6 over 7x7)."""
    rng = np.random.default_rng(seed)
    layers = [(name, "Convolution", [rng.standard_normal((2, 2, 3, 3)), rng.standard_normal(2)])
              for name in VGG16_CONV]
    layers += [("fc6", "InnerProduct", [rng.standard_normal((n, c_in * 49)),
                                        rng.standard_normal(n)]),
               ("drop6", "Dropout", []),
               ("fc7", "InnerProduct", [rng.standard_normal((n, n)), rng.standard_normal(n)]),
               ("fc8", "InnerProduct", [rng.standard_normal((10, n)), rng.standard_normal(10)])]
    write_caffemodel(path, layers, format="v1", name="VGG_ILSVRC_16_layers")
    return read_caffemodel(path)


def test_from_vgg16_cli(tmp_path, capsys):
    vgg = fake_vgg16(tmp_path / "vgg.caffemodel")
    out = tmp_path / "init.caffemodel"
    assert port_caffemodel.main([str(tmp_path / "vgg.caffemodel"), str(out), "--from-vgg16", "--to",
                        "prototxt/DeepLab-LargeFOV/train.prototxt"]) == 0
    text = capsys.readouterr().out
    assert "largefov: fc6 3x3 taps rf, 1024 channels" in text
    assert "fc6      Convolution  1024x2x3x3, 1024" in text
    init = read_caffemodel(out)
    assert init.format == "v1"   # DeepLab v1's Caffe reads V1 only
    assert [l.name for l in init.layers] == list(VGG16_CONV) + ["fc6", "fc7"]   # no fc8
    assert np.array_equal(init.layer("conv3_2").blobs[0], vgg.layer("conv3_2").blobs[0])
    want = decimate_vgg16_fc(*vgg.layer("fc6").blobs, *vgg.layer("fc7").blobs, 3, 1024)
    got = init.layer("fc6").blobs + init.layer("fc7").blobs
    assert [g.shape for g in got] == [(1024, 2, 3, 3), (1024,), (1024, 1024, 1, 1), (1024,)]
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
    # explicit taps and the other channel phase; into a .pt
    pt = tmp_path / "init.pt"
    assert port_caffemodel.main([str(tmp_path / "vgg.caffemodel"), str(pt), "--from-vgg16",
                        "--variant", "largefov", "--taps", "1,2,5", "--channel-offset", "1",
                        "--quiet"]) == 0
    sd = torch.load(pt, weights_only=True)
    w6, w7 = sd["fc6.0"].numpy(), sd["fc7.0"].numpy()
    assert w6.shape == (1024, 2, 3, 3) and w7.shape == (1024, 1024, 1, 1)
    src6 = vgg.layer("fc6").blobs[0].reshape(2048, 2, 7, 7)
    assert np.array_equal(w6, src6[1::2][:, :, [1, 2, 5]][:, :, :, [1, 2, 5]])
    assert np.array_equal(w7[:, :, 0, 0], vgg.layer("fc7").blobs[0][1::2, 1::2])
    assert port_caffemodel.main([str(tmp_path / "vgg.caffemodel"), str(pt), "--from-vgg16",
                        "--variant", "4x4", "--quiet"]) == 1     # 4096 channels from 2048
