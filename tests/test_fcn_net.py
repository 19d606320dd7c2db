"""An FCN-8s-style net (Deconvolution + Crop + Eltwise SUM) builds from a prototxt and its forward
matches the same net written in plain PyTorch.

The prototxt has FCN-8s's structure (shelhamer/fcn.berkeleyvision.org voc-fcn8s) at small widths:
conv1 padded by 100, five conv + 2x2 max-pool stages, fc6 as a 7x7 convolution, fc7 and score_fr
1x1, upscore2 / upscore_pool4 (4x4 stride 2) and upscore8 (16x16 stride 8) deconvolutions with a
fixed bilinear weight, score_pool4 / score_pool3 cropped at offsets 5 / 9, and the final crop at
31 to the input.  One 3x3 pad-1 convolution per stage keeps VGG's coordinate map, so the offsets
are FCN's own.
"""
import pytest
import torch
import torch.nn.functional as F

import deeplab_caffe as dc

K = 5   # classes
WIDTHS = [4, 6, 8, 8, 8]


def fcn8s_prototxt(engine="DEFAULT", size=32, widths=WIDTHS, classes=K, fc=16):
    def conv(name, bottom, n, k, pad=0):
        return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
                f'convolution_param {{ num_output: {n} kernel_size: {k} pad: {pad} '
                f'weight_filler {{ type: "gaussian" std: 0.3 }} '
                f'bias_filler {{ type: "gaussian" std: 0.1 }} }} }}\n')

    def relu(blob):
        return f'layer {{ name: "relu_{blob}" type: "ReLU" bottom: "{blob}" top: "{blob}" }}\n'

    def deconv(name, bottom, k, s):
        return (f'layer {{ name: "{name}" type: "Deconvolution" bottom: "{bottom}" '
                f'top: "{name}" param {{ lr_mult: 0 }} convolution_param {{ num_output: '
                f'{classes} bias_term: false kernel_size: {k} stride: {s} engine: {engine} }} }}\n')

    def crop(name, a, b, offset):
        return (f'layer {{ name: "{name}" type: "Crop" bottom: "{a}" bottom: "{b}" top: "{name}" '
                f'crop_param {{ axis: 2 offset: {offset} }} }}\n')

    def fuse(name, a, b):
        return (f'layer {{ name: "{name}" type: "Eltwise" bottom: "{a}" bottom: "{b}" '
                f'top: "{name}" eltwise_param {{ operation: SUM }} }}\n')

    t = ('layer { name: "input" type: "Input" top: "data" '
         f'input_param {{ shape {{ dim: 1 dim: 3 dim: {size} dim: {size} }} }} }}\n')
    prev = "data"
    for i, n in enumerate(widths, 1):
        t += conv(f"conv{i}", prev, n, 3, 100 if i == 1 else 1) + relu(f"conv{i}")
        t += (f'layer {{ name: "pool{i}" type: "Pooling" bottom: "conv{i}" top: "pool{i}" '
              f'pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}\n')
        prev = f"pool{i}"
    t += conv("fc6", "pool5", fc, 7) + relu("fc6") + conv("fc7", "fc6", fc, 1) + relu("fc7")
    t += conv("score_fr", "fc7", classes, 1) + deconv("upscore2", "score_fr", 4, 2)
    t += conv("score_pool4", "pool4", classes, 1) + crop("score_pool4c", "score_pool4",
                                                         "upscore2", 5)
    t += fuse("fuse_pool4", "upscore2", "score_pool4c")
    t += deconv("upscore_pool4", "fuse_pool4", 4, 2)
    t += conv("score_pool3", "pool3", classes, 1) + crop("score_pool3c", "score_pool3",
                                                         "upscore_pool4", 9)
    t += fuse("fuse_pool3", "upscore_pool4", "score_pool3c")
    t += deconv("upscore8", "fuse_pool3", 16, 8) + crop("score", "upscore8", "data", 31)
    return t


def bilinear_upsampling_weight(channels, k):
    """FCN's surgery.upsample_filt on the diagonal: each class upsampled on its own."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    r = torch.arange(k, dtype=torch.float64)
    f = 1 - (r - center).abs() / factor
    w = torch.zeros(channels, channels, k, k, dtype=torch.float64)
    for c in range(channels):
        w[c, c] = f[:, None] * f[None, :]
    return w


def plain_fcn8s(x, p):
    """The same net in plain PyTorch, from the parameter dict (name -> [weight, bias])."""
    def conv(name, t, pad=0):
        w, b = p[name]
        return F.conv2d(t, w, b, padding=pad)

    h, pools = x, {}
    stage = 1
    while f"conv{stage}" in p:
        h = F.relu(conv(f"conv{stage}", h, 100 if stage == 1 else 1))
        h = F.max_pool2d(h, 2, 2, ceil_mode=True)
        pools[stage] = h
        stage += 1
    h = F.relu(conv("fc6", h))
    h = F.relu(conv("fc7", h))
    up2 = F.conv_transpose2d(conv("score_fr", h), p["upscore2"][0], stride=2)
    s4 = conv("score_pool4", pools[4])[:, :, 5:5 + up2.shape[2], 5:5 + up2.shape[3]]
    up4 = F.conv_transpose2d(up2 + s4, p["upscore_pool4"][0], stride=2)
    s3 = conv("score_pool3", pools[3])[:, :, 9:9 + up4.shape[2], 9:9 + up4.shape[3]]
    up8 = F.conv_transpose2d(up4 + s3, p["upscore8"][0], stride=8)
    return up8[:, :, 31:31 + x.shape[2], 31:31 + x.shape[3]]


def fcn8s_net(engine, phase="TEST"):
    net = dc.Net(fcn8s_prototxt(engine), phase=phase)
    for name, k in (("upscore2", 4), ("upscore_pool4", 4), ("upscore8", 16)):
        (w,) = net.params[name]
        assert tuple(w.shape) == (K, K, k, k)          # (C_in, C_out / group, kh, kw)
        w.data.copy_(bilinear_upsampling_weight(K, k))  # FCN's surgery.interp
    return net


@pytest.mark.parametrize("engine", ["CAFFE", "CUDNN"])
def test_fcn8s_style_net_matches_plain_pytorch(engine):
    torch.manual_seed(0)
    net = fcn8s_net(engine)
    x = torch.randn(1, 3, 32, 32)
    out = net.forward(data=x)
    params = {name: [b.detach().double() for b in blobs] for name, blobs in net.params.items()}
    ref = plain_fcn8s(x.double(), params)
    assert out["score"].shape == (1, K, 32, 32) == ref.shape
    assert ref.abs().max() > 1
    torch.testing.assert_close(out["score"].double(), ref, rtol=1e-4,
                               atol=1e-5 * float(ref.abs().max()))
    # The intermediate crops are FCN's: pool4 scores 15x15 cropped to upscore2's 6x6, and so on.
    assert net.blobs["upscore2"].shape[2:] == (6, 6)
    assert net.blobs["score_pool4"].shape[2:] == (15, 15)
    assert net.blobs["upscore_pool4"].shape[2:] == (14, 14)
    assert net.blobs["upscore8"].shape[2:] == (120, 120)


def test_fcn8s_style_net_reshapes_to_another_input_and_backpropagates():
    torch.manual_seed(1)
    net = fcn8s_net("CAFFE", phase="TRAIN")
    out = net.forward(data=torch.randn(2, 3, 40, 36))
    assert out["score"].shape == (2, K, 40, 36)
    out["score"].square().sum().backward()
    for name in ("conv1", "score_pool3", "score_pool4", "upscore8"):
        assert net.params[name][0].grad.abs().sum() > 0, name
