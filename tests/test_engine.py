"""Caffe's ConvolutionParameter.engine: pick_engine's choice per device and precision, the
Convolution layer's parsing of the field and the path each engine takes, and whole zoo nets with
every convolution forced to ``engine: CAFFE`` (our hole im2col + GEMM) against the DEFAULT engine
(PyTorch's convolution on the CPU): forward, and a backward on the train nets."""
import re
import types

import pytest
import torch

import deeplab_caffe.layers.convolution as convolution
from deeplab_caffe import Net
from deeplab_caffe.ops.engine import pick_engine, precision_of
from layer_util import build, expect_net_error
from zoo_util import V, defines, narrowed, voc_dir  # noqa: F401


def fake(dtype, device):
    return types.SimpleNamespace(dtype=dtype, device=torch.device(device))


def test_pick_engine_honours_an_explicit_engine():
    for x in (torch.zeros(1), torch.zeros(1, dtype=torch.float64), fake(torch.float32, "cuda")):
        assert pick_engine("CAFFE", x) == "CAFFE"
        assert pick_engine("CUDNN", x) == "CUDNN"


def test_pick_engine_default_per_device_and_precision():
    # The measured table (docs/conv_engine.md): PyTorch's convolution on the CPU; the GEMM path
    # on CUDA in FP32/FP64, cuDNN when TF32 is on.
    assert pick_engine("DEFAULT", torch.zeros(1)) == "CUDNN"
    assert pick_engine("DEFAULT", torch.zeros(1, dtype=torch.float64)) == "CUDNN"
    matmul = torch.backends.cuda.matmul
    saved = matmul.allow_tf32
    try:
        matmul.allow_tf32 = False
        assert precision_of(fake(torch.float32, "cuda")) == "fp32"
        assert pick_engine("DEFAULT", fake(torch.float32, "cuda")) == "CAFFE"
        assert pick_engine("DEFAULT", fake(torch.float64, "cuda")) == "CAFFE"
        matmul.allow_tf32 = True
        assert precision_of(fake(torch.float32, "cuda")) == "tf32"
        assert precision_of(fake(torch.float64, "cuda")) == "fp64"
        assert pick_engine("DEFAULT", fake(torch.float32, "cuda")) == "CUDNN"
        assert precision_of(fake(torch.float32, "cpu")) == "fp32"     # TF32 is a CUDA matter
    finally:
        matmul.allow_tf32 = saved
    assert pick_engine("DEFAULT", fake(torch.float32, "xpu")) == "CUDNN"   # unmeasured device


CONV = {"convolution_param": {"num_output": 2, "kernel_size": 3, "dilation": 2,
                              "weight_filler": {"type": "gaussian", "std": 0.1}}}


@pytest.mark.parametrize("engine,name", [(None, "DEFAULT"), ("CAFFE", "CAFFE"),
                                         ("CUDNN", "CUDNN"), (1, "CAFFE"), (2, "CUDNN")])
def test_convolution_parses_engine(engine, name):
    params = {"convolution_param": dict(CONV["convolution_param"])}
    if engine is not None:
        params["convolution_param"]["engine"] = engine
    layer, _ = build("Convolution", params, [(1, 3, 9, 9)])
    assert layer.engine == name


@pytest.mark.parametrize("engine", ["FAST", 3, 1.5])
def test_convolution_rejects_a_bad_engine(engine):
    params = {"convolution_param": dict(CONV["convolution_param"], engine=engine)}
    expect_net_error(lambda: build("Convolution", params, [(1, 3, 9, 9)]), "engine")


@pytest.mark.parametrize("engine,ours", [("CAFFE", True), ("CUDNN", False), ("DEFAULT", False)])
def test_convolution_runs_the_engine_it_names(engine, ours, monkeypatch):
    calls = []
    real = convolution.conv2d_hole

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(convolution, "conv2d_hole", spy)
    params = {"convolution_param": dict(CONV["convolution_param"], engine=engine)}
    layer, _ = build("Convolution", params, [(1, 3, 9, 9)])
    layer(torch.randn(1, 3, 9, 9))
    assert bool(calls) == ours


def zoo_net(variant, fname, phase, defines, engine):
    """A narrowed zoo net at a small crop, every convolution with ``engine`` when given."""
    text = narrowed(variant, fname)
    crop = 42 if V[variant]["pools"] is V["DeepLab"]["pools"] else 41
    text = re.sub(r"crop_size: \d+", f"crop_size: {crop}", text)
    if engine is not None:
        text = text.replace("convolution_param {", f"convolution_param {{ engine: {engine}")
    torch.manual_seed(0)        # same fillers, same data layer seed
    return Net(text, phase=phase, defines=defines)


def assert_close(a, b, what):
    scale = max(1.0, float(b.detach().abs().max()))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * scale, msg=lambda m: f"{what}: {m}")


def random_weights(ref, ours):
    """Test nets have no fillers (their weights come from a .caffemodel): give both nets the
    same He-scaled random weights, so every layer carries signal."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, blobs in ref.params.items():
            for i, p in enumerate(blobs):
                fan_in = p[0].numel() if p.dim() > 1 else 1
                std = (2.0 / fan_in) ** 0.5 if p.dim() > 1 else 0.1
                p.copy_(torch.randn(p.shape, generator=g) * std)
                ours.params[name][i].copy_(p)


@pytest.mark.parametrize("variant", list(V))
def test_zoo_test_nets_forward_alike_with_engine_caffe(variant, defines):
    ref = zoo_net(variant, "test.prototxt", "TEST", defines, None)
    ours = zoo_net(variant, "test.prototxt", "TEST", defines, "CAFFE")
    random_weights(ref, ours)
    convs = [l for l in ours.layers if l.type_name == "Convolution"]
    assert convs and all(l.engine == "CAFFE" for l in convs)
    assert any(l.hole != (1, 1) for l in convs)             # the hole path really runs
    with torch.no_grad():
        a, b = ours.forward(), ref.forward()
    assert torch.equal(ours.blobs["data"], ref.blobs["data"])
    for name in a:
        assert_close(a[name], b[name], name)
    for name, blob in ref.blobs.items():
        assert_close(ours.blobs[name], blob, name)
    assert float(ref.blobs["fc8_interp"].abs().max()) > 0


@pytest.mark.parametrize("variant", ["DeepLab", "DeepLab-LargeFOV", "DeepLab-MSc-LargeFOV"])
def test_zoo_train_nets_backward_alike_with_engine_caffe(variant, defines):
    ref = zoo_net(variant, "train.prototxt", "TRAIN", defines, None)
    ours = zoo_net(variant, "train.prototxt", "TRAIN", defines, "CAFFE")
    for net in (ref, ours):
        torch.manual_seed(1)    # the same dropout masks
        net.forward()
        net.loss.backward()
    assert torch.equal(ours.blobs["data"], ref.blobs["data"])
    assert_close(ours.loss, ref.loss, "loss")
    for name, blobs in ref.params.items():
        for i, p in enumerate(blobs):
            q = ours.params[name][i]
            assert p.grad is not None and q.grad is not None, name
            assert_close(q.grad, p.grad, f"{name}[{i}] diff")
