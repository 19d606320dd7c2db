"""BatchNorm (Caffe's three blobs and moving averages), Scale and Bias against loop references
written from Caffe's batch_norm_layer.cpp / scale_layer.cpp / bias_layer.cpp, and float64
gradcheck."""
import itertools
import math

import pytest
import torch

import deeplab_caffe as dc
from layer_util import build, expect_net_error


def rand(*shape, seed=0, lo=-2.0, hi=2.0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(shape, dtype=torch.float64, generator=g)


def indices(shape):
    return itertools.product(*[range(s) for s in shape])


def with_blobs(layer, tensors):
    """Let ``layer`` read plain (float64, gradient-tracking) tensors as its blobs."""
    layer._modules.pop("blobs", None)
    object.__setattr__(layer, "blobs", list(tensors))


def channel_stats(x):
    """Per channel (axis 1): mean and biased variance over every other axis, by loops."""
    sums = {}
    for idx in indices(x.shape):
        sums.setdefault(idx[1], []).append(x[idx].item())
    mean = [sum(v) / len(v) for _, v in sorted(sums.items())]
    var = [sum((a - m) ** 2 for a in v) / len(v) for m, (_, v) in zip(mean, sorted(sums.items()))]
    return mean, var, len(sums[0])


# -- BatchNorm -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (5, 2), (3, 2, 4)])
def test_batch_norm_train_uses_batch_statistics_and_accumulates_caffes_blobs(shape):
    params = {"batch_norm_param": {"moving_average_fraction": 0.9, "eps": 1e-3}}
    layer, shapes = build("BatchNorm", params, [shape], phase="TRAIN")
    assert shapes == [shape] and not layer.use_global_stats
    assert [tuple(b.shape) for b in layer.blobs] == [(shape[1],), (shape[1],), (1,)]
    assert all((b == 0).all() for b in layer.blobs)
    layer.double()
    x1, x2 = rand(*shape, seed=1), rand(*shape, seed=2, lo=-1, hi=3)
    for step, x in enumerate((x1, x2)):
        y = layer(x)[0]
        mean, var, m = channel_stats(x)
        for idx in indices(shape):
            c = idx[1]
            want = (x[idx].item() - mean[c]) / math.sqrt(var[c] + 1e-3)
            assert abs(y[idx].item() - want) < 1e-12
        if step == 0:
            first = (mean, var)
    corr = m / (m - 1)
    assert layer.blobs[2].tolist() == [0.9 * 1 + 1]
    torch.testing.assert_close(layer.blobs[0], torch.tensor(
        [a + 0.9 * b for a, b in zip(mean, first[0])], dtype=torch.float64))
    torch.testing.assert_close(layer.blobs[1], torch.tensor(
        [corr * a + 0.9 * corr * b for a, b in zip(var, first[1])], dtype=torch.float64))


def test_batch_norm_test_phase_uses_the_blobs_divided_by_the_scale_factor():
    shape = (2, 3, 2, 2)
    layer, _ = build("BatchNorm", {}, [shape])      # TEST: use_global_stats defaults to true
    assert layer.use_global_stats and layer.eps == 1e-5
    layer.double()
    with torch.no_grad():
        layer.blobs[0].copy_(torch.tensor([4.0, -2.0, 0.5]))
        layer.blobs[1].copy_(torch.tensor([8.0, 2.0, 1.0]))
        layer.blobs[2].fill_(4.0)
    x = rand(*shape, seed=3)
    y = layer(x)[0]
    mean, var = [1.0, -0.5, 0.125], [2.0, 0.5, 0.25]
    for idx in indices(shape):
        want = (x[idx].item() - mean[idx[1]]) / math.sqrt(var[idx[1]] + 1e-5)
        assert abs(y[idx].item() - want) < 1e-13
    assert layer.blobs[2].item() == 4.0           # global statistics are not updated
    with torch.no_grad():
        layer.blobs[2].fill_(0.0)                 # Caffe: scale factor 0 -> statistics 0
    torch.testing.assert_close(layer(x)[0], x / math.sqrt(1e-5))


def test_batch_norm_use_global_stats_overrides_the_phase():
    layer, _ = build("BatchNorm", {"batch_norm_param": {"use_global_stats": True}},
                     [(2, 3)], phase="TRAIN")
    assert layer.use_global_stats
    layer, _ = build("BatchNorm", {"batch_norm_param": {"use_global_stats": False}}, [(2, 3)])
    assert not layer.use_global_stats
    layer.double()
    layer(rand(2, 3))
    assert layer.blobs[2].tolist() == [1.0]


@pytest.mark.parametrize("global_stats", [True, False])
def test_batch_norm_backward(global_stats):
    shape = (3, 2, 2, 3)
    layer, _ = build("BatchNorm", {"batch_norm_param": {"use_global_stats": global_stats,
                                                        "eps": 0.01}}, [shape])
    layer.double()
    with torch.no_grad():
        layer.blobs[0].copy_(torch.tensor([0.3, -0.2]))
        layer.blobs[1].copy_(torch.tensor([1.5, 0.5]))
        layer.blobs[2].fill_(1.0)
    x = rand(*shape, seed=4)
    dy = rand(*shape, seed=5)
    xg = x.clone().requires_grad_()
    y = layer(xg)[0]
    y.backward(dy)
    if global_stats:
        std = [math.sqrt(1.5 + 0.01), math.sqrt(0.5 + 0.01)]
        want = torch.stack([dy[:, c] / std[c] for c in range(2)], 1)
    else:
        # Caffe's closed form: (dy - mean(dy) - mean(dy * y) * y) / sqrt(var + eps).
        _, var, _ = channel_stats(x)
        yd = y.detach()
        want = torch.empty_like(x)
        for c in range(2):
            m_dy = dy[:, c].mean().item()
            m_dyy = (dy[:, c] * yd[:, c]).mean().item()
            want[:, c] = (dy[:, c] - m_dy - m_dyy * yd[:, c]) / math.sqrt(var[c] + 0.01)
    torch.testing.assert_close(xg.grad, want, rtol=1e-12, atol=1e-13)
    with torch.no_grad():
        layer.blobs[2].fill_(1.0)
    assert torch.autograd.gradcheck(lambda t: layer(t)[0], (x.requires_grad_(),))


BN_NET = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" %s }
"""


def test_batch_norm_statistics_get_lr_mult_zero_and_refuse_another():
    net = dc.Net(BN_NET % "", phase="TRAIN")
    assert [(lr, i) for _, lr, _, name, i in net.learnable_params()] == [
        (0.0, 0), (0.0, 1), (0.0, 2)]
    net = dc.Net(BN_NET % "param { lr_mult: 0 decay_mult: 0 }", phase="TRAIN")
    assert [lr for _, lr, *_ in net.learnable_params()] == [0.0, 0.0, 0.0]
    with pytest.raises(dc.errors.NetError, match="Cannot configure batch normalization "
                                                 "statistics.*lr_mult 1"):
        dc.Net(BN_NET % "param { lr_mult: 0 } param { lr_mult: 1 }")


def test_batch_norm_shape_errors():
    expect_net_error(lambda: build("BatchNorm", {}, [(5,)]), "at least 2 axes")
    layer, _ = build("BatchNorm", {}, [(2, 3)])
    with pytest.raises(dc.errors.NetError, match="3 channels"):
        layer(torch.zeros(2, 4))


# -- Scale and Bias ------------------------------------------------------------------------------
# type, params, bottom shapes, operand shape (bottom 1 or the learned blob), start axis,
# bias blob shape for Scale's bias_term (None: no bias).
OPERAND_ROWS = [
    ("Scale", {}, [(2, 3, 4, 5)], (3,), 1, None),
    ("Scale", {"axis": 2, "num_axes": 2}, [(2, 3, 4, 5)], (4, 5), 2, None),
    ("Scale", {"axis": -3, "num_axes": -1}, [(2, 3, 4, 5)], (3, 4, 5), 1, None),
    ("Scale", {"num_axes": 0}, [(2, 3, 4)], (), 0, None),
    ("Scale", {"axis": 0}, [(2, 3, 4), (2, 3)], (2, 3), 0, None),
    ("Scale", {"axis": 2}, [(2, 3, 4), ()], (), 0, None),
    ("Scale", {"bias_term": True}, [(2, 3, 4, 5)], (3,), 1, (3,)),
    ("Scale", {"bias_term": True, "axis": 1}, [(2, 3, 4), (3, 4)], (3, 4), 1, (3, 4)),
    ("Scale", {"bias_term": True, "num_axes": 0}, [(2, 3)], (), 0, ()),
    ("Bias", {}, [(2, 3, 4, 5)], (3,), 1, None),
    ("Bias", {"axis": -1, "num_axes": -1}, [(2, 3, 4)], (4,), 2, None),
    ("Bias", {"num_axes": 0}, [(2, 3)], (), 0, None),
    ("Bias", {"axis": 1}, [(2, 3, 4), (3, 4)], (3, 4), 1, None),
    ("Bias", {"axis": 1}, [(2, 3, 4), ()], (), 0, None),
]


@pytest.mark.parametrize("row", OPERAND_ROWS, ids=lambda r: f"{r[0]}-{r[2]}-{r[1]}")
def test_scale_and_bias_against_loops(row):
    type_name, p, shapes, op_shape, axis, bias_shape = row
    key = "scale_param" if type_name == "Scale" else "bias_param"
    layer, tops = build(type_name, {key: p} if p else {}, shapes)
    assert tops == [shapes[0]]
    learned = len(shapes) == 1
    blob_shapes = ([op_shape] if learned else []) + ([bias_shape] if bias_shape is not None else [])
    assert [tuple(b.shape) for b in layer.blobs] == blob_shapes
    if learned:   # Caffe's default fillers: constant 1 for a scale, constant 0 for a bias
        assert (layer.blobs[0] == (1.0 if type_name == "Scale" else 0.0)).all()
    if bias_shape is not None:
        assert (layer.blobs[-1] == 0.0).all()
    x = rand(*shapes[0], seed=1)
    s = rand(*op_shape, seed=2, lo=0.5, hi=1.5).requires_grad_()
    b = rand(*bias_shape, seed=3).requires_grad_() if bias_shape is not None else None
    with_blobs(layer, ([s] if learned else []) + ([b] if b is not None else []))
    xg = x.clone().requires_grad_()
    y = layer(xg, *([] if learned else [s]))[0]
    dy = rand(*shapes[0], seed=4)
    y.backward(dy)
    ref, dx = torch.empty_like(x), torch.empty_like(x)
    ds, db = torch.zeros_like(s), (torch.zeros_like(b) if b is not None else None)
    for idx in indices(shapes[0]):
        j = idx[axis:axis + len(op_shape)]
        bj = idx[axis:axis + len(bias_shape)] if bias_shape is not None else None
        if type_name == "Scale":
            ref[idx] = x[idx] * s[j] + (b[bj] if b is not None else 0.0)
            dx[idx] = dy[idx] * s[j]
            ds[j] += dy[idx] * x[idx]
        else:
            ref[idx] = x[idx] + s[j]
            dx[idx] = dy[idx]
            ds[j] += dy[idx]
        if b is not None:
            db[bj] += dy[idx]
    torch.testing.assert_close(y.detach(), ref.detach(), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(xg.grad, dx.detach(), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(s.grad, ds.detach(), rtol=1e-12, atol=1e-13)
    if b is not None:
        torch.testing.assert_close(b.grad, db.detach(), rtol=1e-12, atol=1e-13)
    extra = [b.detach().clone().requires_grad_()] if b is not None else []

    def f(xv, sv, *bv):
        with_blobs(layer, ([sv] if learned else []) + list(bv))
        return layer(xv, *([] if learned else [sv]))[0]
    assert torch.autograd.gradcheck(f, (x.requires_grad_(), s.detach().clone().requires_grad_(),
                                        *extra))


def test_scale_fillers():
    layer, _ = build("Scale", {"scale_param": {"bias_term": True,
                                               "filler": {"type": "constant", "value": 2.5},
                                               "bias_filler": {"type": "constant",
                                                               "value": -1.0}}}, [(2, 3)])
    assert layer.blobs[0].tolist() == [2.5] * 3 and layer.blobs[1].tolist() == [-1.0] * 3
    layer, _ = build("Bias", {"bias_param": {"filler": {"type": "constant", "value": 0.5}}},
                     [(2, 3)])
    assert layer.blobs[0].tolist() == [0.5] * 3


@pytest.mark.parametrize("type_name,params,shapes,words", [
    ("Scale", {"scale_param": {"axis": 1}}, [(2, 3, 4), (4,)], ["dimension mismatch",
                                                                 "shape(1) = 3"]),
    ("Bias", {"bias_param": {"axis": 2}}, [(2, 3, 4), (4, 5)], ["extends past"]),
    ("Scale", {"scale_param": {"num_axes": -2}}, [(2, 3)], ["num_axes", "-2"]),
    ("Scale", {"scale_param": {"axis": 1, "num_axes": 3}}, [(2, 3)], ["extends past"]),
    ("Bias", {"bias_param": {"axis": 3}}, [(2, 3)], ["axis 3 out of range"]),
    ("Scale", {}, [(2, 3), (3,), (3,)], ["at most 2 bottom"]),
])
def test_scale_and_bias_errors(type_name, params, shapes, words):
    expect_net_error(lambda: build(type_name, params, shapes), *words)
