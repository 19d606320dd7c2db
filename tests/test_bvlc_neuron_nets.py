"""Whole nets of the types BVLC added for DeepLab v2 and MTCNN, against the same nets written
with plain PyTorch ops: a DeepLab v2 ResNet/ASPP-style net (bottleneck blocks of Convolution +
BatchNorm (use_global_stats) + Scale + ReLU, projection and identity shortcuts, dilated 3x3
convolutions, an ASPP head of four dilated convolutions summed by Eltwise, written as DeepLab v2's
deploy prototxt writes them) and an MTCNN P-Net-style net with PReLU."""
import torch
import torch.nn.functional as F

import deeplab_caffe as dc

EPS = 1e-5   # BatchNormParameter's default eps


def conv(bottom, top, n, k, pad=0, stride=1, dilation=1, bias=False):
    dil = f"dilation: {dilation} " if dilation > 1 else ""
    filler = 'weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "gaussian" }'
    return (f'layer {{ name: "{top}" type: "Convolution" bottom: "{bottom}" top: "{top}" '
            f'param {{ lr_mult: 1 }} {"param { lr_mult: 2 } " if bias else ""}'
            f'convolution_param {{ num_output: {n} kernel_size: {k} pad: {pad} stride: {stride} '
            f'{dil}bias_term: {"true" if bias else "false"} {filler} }} }}\n')


def bn_scale_relu(blob, relu=True):
    text = (f'layer {{ name: "bn_{blob}" type: "BatchNorm" bottom: "{blob}" top: "{blob}" '
            f'batch_norm_param {{ use_global_stats: true }} '
            f'param {{ lr_mult: 0 }} param {{ lr_mult: 0 }} param {{ lr_mult: 0 }} }}\n'
            f'layer {{ name: "scale_{blob}" type: "Scale" bottom: "{blob}" top: "{blob}" '
            f'scale_param {{ bias_term: true }} }}\n')
    if relu:
        text += f'layer {{ name: "{blob}_relu" type: "ReLU" bottom: "{blob}" top: "{blob}" }}\n'
    return text


def bottleneck(prev, name, mid, out, stride=1, dilation=1, project=False):
    text = ""
    if project:
        text += conv(prev, f"{name}_branch1", out, 1, stride=stride)
        text += bn_scale_relu(f"{name}_branch1", relu=False)
    text += conv(prev, f"{name}_branch2a", mid, 1, stride=stride) + bn_scale_relu(
        f"{name}_branch2a")
    text += conv(f"{name}_branch2a", f"{name}_branch2b", mid, 3, pad=dilation,
                 dilation=dilation) + bn_scale_relu(f"{name}_branch2b")
    text += conv(f"{name}_branch2b", f"{name}_branch2c", out, 1) + bn_scale_relu(
        f"{name}_branch2c", relu=False)
    shortcut = f"{name}_branch1" if project else prev
    text += (f'layer {{ name: "{name}" type: "Eltwise" bottom: "{shortcut}" '
             f'bottom: "{name}_branch2c" top: "{name}" }}\n'
             f'layer {{ name: "{name}_relu" type: "ReLU" bottom: "{name}" top: "{name}" }}\n')
    return text


BLOCKS = [("res2a", 4, 16, 1, 1, True), ("res3a", 8, 32, 2, 1, True),
          ("res4a", 8, 32, 1, 2, True), ("res4b", 8, 32, 1, 2, False)]
ASPP_RATES = (2, 4, 8, 12)     # DeepLab v2's ASPP-S


def prototxt(classes=5):
    text = ('name: "deeplab_v2_like"\n'
            'layer { name: "data" type: "Input" top: "data" '
            'input_param { shape { dim: 2 dim: 3 dim: 65 dim: 65 } } }\n')
    text += conv("data", "conv1", 8, 7, pad=3, stride=2) + bn_scale_relu("conv1")
    text += ('layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" '
             'pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }\n')
    prev = "pool1"
    for name, mid, out, stride, dilation, project in BLOCKS:
        text += bottleneck(prev, name, mid, out, stride, dilation, project)
        prev = name
    for i, rate in enumerate(ASPP_RATES):
        text += conv(prev, f"fc1_c{i}", classes, 3, pad=rate, dilation=rate, bias=True)
    text += ('layer { name: "fc1" type: "Eltwise" bottom: "fc1_c0" bottom: "fc1_c1" '
             'bottom: "fc1_c2" bottom: "fc1_c3" top: "fc1" eltwise_param { operation: SUM } }\n')
    return text


def randomize_statistics(net, seed=0):
    """BatchNorm blobs as a trained Caffe model stores them (sums weighted by a scale factor
    that is not 1), Scale's gamma and beta away from their fillers."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, layer in zip(net.layer_names, net.layers):
            if layer.type_name == "BatchNorm":
                c = layer.blobs[0].numel()
                factor = 0.5 + torch.rand(1, generator=g).item()
                layer.blobs[0].copy_(torch.randn(c, generator=g) * 0.3 * factor)
                layer.blobs[1].copy_((0.5 + torch.rand(c, generator=g)) * factor)
                layer.blobs[2].fill_(factor)
            elif layer.type_name == "Scale":
                layer.blobs[0].copy_(0.5 + torch.rand(layer.blobs[0].shape, generator=g))
                layer.blobs[1].copy_(0.2 * torch.randn(layer.blobs[1].shape, generator=g))


def reference_forward(net, x):
    """The same net in plain PyTorch: weights read from net.params, everything else by hand."""
    p = {k: [b.detach() for b in v] for k, v in net.params.items()}

    def conv_bn(t, name, stride=1, pad=0, dilation=1, relu=True):
        t = F.conv2d(t, p[name][0], None, stride, pad, dilation)
        mean, var, factor = p[f"bn_{name}"]
        mean, var = mean / factor, var / factor
        gamma, beta = p[f"scale_{name}"]
        t = (t - mean[:, None, None]) / torch.sqrt(var + EPS)[:, None, None]
        t = t * gamma[:, None, None] + beta[:, None, None]
        return F.relu(t) if relu else t

    t = conv_bn(x, "conv1", stride=2, pad=3)
    t = F.max_pool2d(t, 3, 2, padding=1, ceil_mode=True)
    for name, _, _, stride, dilation, project in BLOCKS:
        shortcut = conv_bn(t, f"{name}_branch1", stride, relu=False) if project else t
        b = conv_bn(t, f"{name}_branch2a", stride)
        b = conv_bn(b, f"{name}_branch2b", pad=dilation, dilation=dilation)
        b = conv_bn(b, f"{name}_branch2c", relu=False)
        t = F.relu(shortcut + b)
    return sum(F.conv2d(t, p[f"fc1_c{i}"][0], p[f"fc1_c{i}"][1], 1, rate, rate)
               for i, rate in enumerate(ASPP_RATES))


def test_deeplab_v2_style_net_matches_plain_pytorch():
    torch.manual_seed(0)
    net = dc.Net(prototxt())
    assert net.blob_shapes["pool1"] == (2, 8, 17, 17)
    assert net.blob_shapes["res3a"] == (2, 32, 9, 9)
    assert net.blob_shapes["fc1"] == (2, 5, 9, 9)
    assert [tuple(b.shape) for b in net.params["bn_conv1"]] == [(8,), (8,), (1,)]
    assert [tuple(b.shape) for b in net.params["scale_conv1"]] == [(8,), (8,)]
    randomize_statistics(net)
    x = torch.randn(2, 3, 65, 65, generator=torch.Generator().manual_seed(1))
    out = net.forward(data=x)["fc1"]
    want = reference_forward(net, x)
    assert out.abs().max() > 0.1    # the comparison is not between two zero maps
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)


def test_train_phase_with_global_stats_keeps_the_statistics(tmp_path):
    torch.manual_seed(0)
    test_net = dc.Net(prototxt())
    randomize_statistics(test_net)
    weights = tmp_path / "v2like.caffemodel"
    test_net.save(str(weights))
    train_net = dc.Net(prototxt(), weights=str(weights), phase="TRAIN")
    before = [b.detach().clone() for b in train_net.params["bn_res4b_branch2b"]]
    x = torch.randn(2, 3, 65, 65, generator=torch.Generator().manual_seed(2))
    out = train_net.forward(data=x)["fc1"]
    torch.testing.assert_close(out, test_net.forward(data=x)["fc1"], rtol=1e-5, atol=1e-5)
    after = train_net.params["bn_res4b_branch2b"]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    frozen = {(n, i) for _, lr, _, n, i in train_net.learnable_params() if lr == 0}
    assert ("bn_conv1", 2) in frozen and ("scale_conv1", 0) not in frozen


PNET = """name: "PNet"
layer { name: "input" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 17 dim: 17 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 10 kernel_size: 3 weight_filler { type: "xavier" }
                            bias_filler { type: "gaussian" } } }
layer { name: "PReLU1" type: "PReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 16 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "PReLU2" type: "PReLU" bottom: "conv2" top: "conv2"
        prelu_param { channel_shared: true } }
layer { name: "conv4-1" type: "Convolution" bottom: "conv2" top: "conv4-1"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "conv4-2" type: "Convolution" bottom: "conv2" top: "conv4-2"
        convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "prob1" type: "Softmax" bottom: "conv4-1" top: "prob1" }
"""


def test_mtcnn_pnet_style_prelu_net_matches_plain_pytorch():
    """MTCNN's P-Net shape (its det1.prototxt: in-place PReLU after each convolution, 2x2 max
    pooling with Caffe's ceil, two 1x1 heads); one slope per channel, then a shared one."""
    torch.manual_seed(0)
    net = dc.Net(PNET)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        net.params["PReLU1"][0].copy_(torch.rand(10, generator=g) - 0.5)
        net.params["PReLU2"][0].fill_(-0.2)
    assert tuple(net.params["PReLU2"][0].shape) == ()
    x = torch.randn(2, 3, 17, 17, generator=g)
    out = net.forward(data=x)
    p = {k: [b.detach() for b in v] for k, v in net.params.items()}
    t = F.prelu(F.conv2d(x, *p["conv1"]), p["PReLU1"][0])
    t = F.max_pool2d(t, 2, 2, ceil_mode=True)        # 15 -> 8 with Caffe's ceil
    t = F.conv2d(t, *p["conv2"])
    t = torch.where(t > 0, t, -0.2 * t)
    torch.testing.assert_close(out["conv4-2"], F.conv2d(t, *p["conv4-2"]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["prob1"], F.softmax(F.conv2d(t, *p["conv4-1"]), dim=1),
                               rtol=1e-5, atol=1e-6)
    assert out["prob1"].shape == (2, 2, 6, 6)
