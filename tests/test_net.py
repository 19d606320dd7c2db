"""Net building with Caffe's rules, forward, weights in and out, and the real Caffe fixtures."""
import os

import pytest
import torch
import torch.nn.functional as F

import deeplab_caffe as dc
from deeplab_caffe.errors import NetError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "caffe")


def fixture(*parts):
    path = os.path.join(FIXTURES, *parts)
    if not os.path.exists(path):
        pytest.skip(f"fixture {path} absent")
    return path


SMALL = """
name: "small"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 17 dim: 17 } shape { dim: 2 dim: 1 dim: 17 dim: 17 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 4 kernel_size: 3 pad: 2 dilation: 2
                            weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0.5 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "drop1" type: "Dropout" bottom: "conv1" top: "conv1" include { phase: TRAIN } }
layer { name: "score" type: "Convolution" bottom: "conv1" top: "score"
        convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        include { phase: TRAIN } }
layer { name: "prob" type: "Softmax" bottom: "score" top: "prob" exclude { phase: TRAIN } }
"""


def test_phase_filtering_outputs_and_params():
    test = dc.Net(SMALL, phase="TEST")
    assert test.layer_names == ["data", "conv1", "relu1", "score", "prob"]
    assert test.outputs == ["label", "prob"]  # unconsumed blobs, sorted as Caffe's std::set
    train = dc.Net(SMALL, phase="TRAIN")
    assert train.layer_names == ["data", "conv1", "relu1", "drop1", "score", "loss"]
    assert train.outputs == ["loss"]
    assert [tuple(p.shape) for p in train.params["conv1"]] == [(4, 3, 3, 3), (4,)]
    assert torch.all(train.params["conv1"][1] == 0.5)
    lp = train.learnable_params()
    assert [(name, i, lr, decay) for _, lr, decay, name, i in lp] == [
        ("conv1", 0, 1.0, 1.0), ("conv1", 1, 2.0, 0.0), ("score", 0, 1.0, 1.0),
        ("score", 1, 1.0, 1.0)]


def test_forward_matches_hand_computation_and_loss_weight():
    torch.manual_seed(0)
    net = dc.Net(SMALL, phase="TRAIN")
    net.eval()  # dropout off so the hand computation is deterministic
    x = torch.randn(2, 3, 17, 17)
    label = torch.randint(0, 3, (2, 1, 17, 17)).float()
    out = net.forward(data=x, label=label)
    w1, b1 = net.params["conv1"]
    w2, b2 = net.params["score"]
    h = F.relu(F.conv2d(x, w1, b1, padding=2, dilation=2))
    score = F.conv2d(h, w2, b2)
    ref = F.cross_entropy(score, label[:, 0].long())
    torch.testing.assert_close(out["loss"], ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net.loss, ref, rtol=1e-5, atol=1e-6)
    # in place: the blob "conv1" holds the ReLU output after forward, as in Caffe
    torch.testing.assert_close(net.blobs["conv1"], h)
    net.loss.backward()
    assert net.params["conv1"][0].grad is not None


def test_dropout_follows_phase():
    torch.manual_seed(0)
    net = dc.Net(SMALL, phase="TRAIN")
    x = torch.randn(2, 3, 17, 17)
    lab = torch.zeros(2, 1, 17, 17)
    net.forward(data=x, label=lab)
    a = net.blobs["conv1"].clone()
    net.eval()
    net.forward(data=x, label=lab)
    b = net.blobs["conv1"]
    assert not torch.equal(a, b)
    nz = a != 0
    torch.testing.assert_close(a[nz], 2 * b[nz])  # 1 / (1 - 0.5) scaling on kept units


def test_blob_consumed_twice_sums_gradients():
    text = """
    layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }
    layer { name: "a" type: "Convolution" bottom: "x" top: "a" convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "constant" value: 1 } } }
    layer { name: "b" type: "Eltwise" bottom: "a" bottom: "a" top: "b" eltwise_param { operation: SUM coeff: 2 coeff: 3 } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "b" bottom: "x" top: "loss" }
    """
    net = dc.Net(text)
    net.force_backward = True   # a TEST net records gradients only when asked
    x = torch.randn(1, 2, 4, 4)
    net.forward(x=x)
    net.backward()
    w = net.params["a"][0].detach().clone().requires_grad_()
    bias = net.params["a"][1].detach().clone().requires_grad_()
    a = F.conv2d(x, w, bias)
    b = 2 * a + 3 * a
    ref = ((b - x) ** 2).sum() / 2 / 1
    ref.backward()
    torch.testing.assert_close(net.params["a"][0].grad, w.grad)


def test_parameter_sharing():
    text = """
    layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 } } }
    layer { name: "c1" type: "Convolution" bottom: "x" top: "y1" param { name: "shared_w" } param { name: "shared_b" }
            convolution_param { num_output: 2 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" } } }
    layer { name: "c2" type: "Convolution" bottom: "y1" top: "y2" param { name: "shared_w" } param { name: "shared_b" }
            convolution_param { num_output: 2 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" } } }
    """
    net = dc.Net(text)
    assert net.params["c1"][0] is net.params["c2"][0]
    assert len(net.learnable_params()) == 2
    bad = text.replace("num_output: 2 kernel_size: 3 pad: 1 weight_filler { type: \"gaussian\" } } }\n    \"\"\"", "")
    bad = text.rsplit("num_output: 2", 1)
    bad = bad[0] + "num_output: 2 kernel_size: 1" + bad[1].replace(" kernel_size: 3 pad: 1", "", 1)
    with pytest.raises(NetError, match="cannot share param 'shared_w'"):
        dc.Net(bad)


@pytest.mark.parametrize("text,match", [
    ('layer { name: "c" type: "ReLU" bottom: "nope" top: "c" }', "unknown bottom blob 'nope'"),
    ('layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
     'layer { name: "e" type: "Input" top: "x" input_param { shape { dim: 1 } } }',
     "top blob 'x' .*already produced by layer 'd'"),
    ('layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n'
     'layer { name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 2 kernel_size: 3 dilation: 3 } }',
     "layer 'c'.*larger than the padded input"),
    ('layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
     'layer { name: "q" type: "NoSuchType" bottom: "x" top: "y" }', "unknown layer type 'NoSuchType'"),
])
def test_build_errors_name_the_layer(text, match):
    with pytest.raises(NetError, match=match) as err:
        dc.Net(text)
    assert "<string>:" in str(err.value)  # file:line:col of the layer


def test_save_and_copy_from_round_trip(tmp_path):
    torch.manual_seed(1)
    a = dc.Net(SMALL, phase="TRAIN")
    for fmt, name in (("v2", "w2.caffemodel"), ("v1", "w1.caffemodel"), ("v2", "w.pt")):
        path = tmp_path / name
        a.save(path, format=fmt)
        b = dc.Net(SMALL, phase="TEST")
        copied = b.copy_from(path)
        assert copied == ["conv1", "score"]
        for layer in ("conv1", "score"):
            for pa, pb in zip(a.params[layer], b.params[layer]):
                assert torch.equal(pa, pb)


FC_AS_CONV = """
layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 2 dim: 2 dim: 1 dim: 1 } } }
layer { name: "fc" type: "Convolution" bottom: "x" top: "y"
        convolution_param { num_output: 6 kernel_size: 1 weight_filler { type: "gaussian" } } }
"""
FC_AS_IP = """
layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 2 dim: 2 dim: 1 dim: 1 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" STRICT
        inner_product_param { num_output: 6 } }
"""


def test_copy_from_shape_mismatch_and_strict_dim(tmp_path):
    torch.manual_seed(2)
    src = dc.Net(FC_AS_CONV)
    path = tmp_path / "w.caffemodel"
    src.save(path)
    strict = FC_AS_IP.replace("STRICT", "")
    with pytest.raises(NetError, match=r"layer 'fc'.*shape \(6, 2, 1, 1\).*expects \(6, 2\)"):
        dc.Net(strict).copy_from(path)
    # Same element count: loaded reshaped with DeepLab v1's strict_dim: false (V1 syntax) ...
    v1 = """
    input: "x" input_dim: 2 input_dim: 2 input_dim: 1 input_dim: 1
    layers { name: "fc" type: INNER_PRODUCT bottom: "x" top: "y" strict_dim: false
             inner_product_param { num_output: 6 } }
    """
    net = dc.Net(v1)
    net.copy_from(path)
    assert torch.equal(net.params["fc"][0], src.params["fc"][0].reshape(6, 2))
    # ... or with allow_reshape=True.
    net = dc.Net(strict)
    net.copy_from(path, allow_reshape=True)
    x = torch.randn(2, 2, 1, 1)
    torch.testing.assert_close(net.forward(x=x)["y"], src.forward(x=x)["y"].reshape(2, 6))
    # A different element count is an error even then.
    bigger = strict.replace("num_output: 6", "num_output: 5")
    with pytest.raises(NetError, match="layer 'fc'"):
        dc.Net(bigger).copy_from(path, allow_reshape=True)


def test_meta_device_builds_without_memory():
    net = dc.Net(SMALL, device="meta")
    assert net.params["conv1"][0].device.type == "meta"


def test_lenet_v1_fixture_forward():
    proto = fixture("v1", "lenet.prototxt")
    weights = fixture("v1", "lenet_iter_10000.caffemodel")
    net = dc.Net(proto, weights=weights)
    assert [tuple(p.shape) for p in net.params["conv1"]] == [(20, 1, 5, 5), (20,)]
    assert [tuple(p.shape) for p in net.params["ip1"]] == [(500, 800), (500,)]
    # A centred bar is not random noise: the trained net must be confident about something.
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 4:24, 13:15] = 1.0  # a "1"
    out = net.forward(data=x)
    prob = out["prob"]
    assert prob.shape == (64, 10)
    torch.testing.assert_close(prob.sum(1), torch.ones(64))
    assert prob[0].argmax().item() == 1
    # The same weights through plain torch ops.
    p = net.params
    h = F.max_pool2d(F.conv2d(x, *p["conv1"]), 2, 2)
    h = F.max_pool2d(F.conv2d(h, *p["conv2"]), 2, 2)
    h = F.relu(F.linear(h.flatten(1), *p["ip1"]))
    ref = F.softmax(F.linear(h, *p["ip2"]), 1)
    torch.testing.assert_close(prob, ref, rtol=1e-4, atol=1e-5)


def test_lenet_v2_fixture_and_v1_agree():
    v1 = dc.Net(fixture("v1", "lenet.prototxt"), weights=fixture("v1", "lenet_iter_10000.caffemodel"))
    v2 = dc.Net(fixture("v2", "lenet.prototxt"), weights=fixture("v2", "lenet_iter_10000.caffemodel"))
    for name in ("conv1", "conv2", "ip1", "ip2"):
        for a, b in zip(v1.params[name], v2.params[name]):
            assert a.shape == b.shape


def test_cifar10_quick_fixture_uses_ceil_pooling():
    net = dc.Net(fixture("v1", "cifar10_quick.prototxt"),
                 weights=fixture("v1", "cifar10_quick_iter_5000.caffemodel"))
    assert tuple(net.params["ip1"][0].shape) == (64, 1024)  # 32 -> 16 -> 8 -> 4 (ceil)
    out = net.forward(data=torch.randn(net.blob_shapes["data"]) * 50)
    (prob,) = out.values()
    assert prob.shape[1] == 10 and torch.isfinite(prob).all()
