"""BVLC's element-wise neuron layers (AbsVal, BNLL, Clip, ELU, Exp, Log, Power, Sigmoid, Swish,
TanH, Threshold), PReLU and MVN against naive per-element references written from Caffe's
Forward_cpu / Backward_cpu, and float64 gradcheck away from the kinks."""
import math

import pytest
import torch

from conftest import requires_cuda
from layer_util import build, expect_net_error

from deeplab_caffe.errors import NetError


def rand(*shape, seed=0, lo=-2.0, hi=2.0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(shape, dtype=torch.float64, generator=g)


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def bnll(v):
    return v + math.log(1 + math.exp(-v)) if v > 0 else math.log(1 + math.exp(v))


# One row per case: type, params, (lo, hi) of the inputs, kinks (values put in the input
# exactly, where the backward takes Caffe's convention, and kept away from by gradcheck),
# f(x) and Caffe's dy/dx(x, y), both per element in plain Python.
ROWS = [
    ("AbsVal", {}, (-2, 2), [0.0], abs, lambda x, y: (x > 0) - (x < 0)),
    ("BNLL", {}, (-3, 3), [], bnll,
     lambda x, y: math.exp(min(x, 50)) / (math.exp(min(x, 50)) + 1)),
    ("Clip", {"clip_param": {"min": -0.5, "max": 0.7}}, (-2, 2), [-0.5, 0.7],
     lambda x: max(-0.5, min(x, 0.7)), lambda x, y: float(-0.5 <= x <= 0.7)),
    ("ELU", {}, (-2, 2), [0.0], lambda x: x if x > 0 else math.exp(x) - 1,
     lambda x, y: 1.0 if x > 0 else 1 + y),
    ("ELU", {"elu_param": {"alpha": 0.3}}, (-2, 2), [0.0],
     lambda x: x if x > 0 else 0.3 * (math.exp(x) - 1), lambda x, y: 1.0 if x > 0 else 0.3 + y),
    ("Exp", {}, (-2, 2), [], math.exp, lambda x, y: y),
    ("Exp", {"exp_param": {"base": 2.0, "scale": 0.5, "shift": 1.0}}, (-2, 2), [],
     lambda x: 2.0 ** (1 + 0.5 * x), lambda x, y: y * 0.5 * math.log(2)),
    ("Log", {}, (0.1, 3), [], math.log, lambda x, y: 1 / x),
    ("Log", {"log_param": {"base": 10.0, "scale": 2.0, "shift": 3.0}}, (-1.4, 2), [],
     lambda x: math.log10(2 * x + 3), lambda x, y: 2 / ((2 * x + 3) * math.log(10))),
    ("Power", {}, (-2, 2), [], lambda x: x, lambda x, y: 1.0),
    ("Power", {"power_param": {"power": 2.0, "scale": 0.5, "shift": 1.0}}, (-2, 2), [],
     lambda x: (1 + 0.5 * x) ** 2, lambda x, y: 2 * 0.5 * (1 + 0.5 * x)),
    ("Power", {"power_param": {"power": 3.0, "scale": 2.0}}, (0.2, 2), [],
     lambda x: (2 * x) ** 3, lambda x, y: 3 * 2 * (2 * x) ** 2),
    ("Power", {"power_param": {"power": 0.5, "shift": 2.0}}, (-1.5, 2), [],
     lambda x: math.sqrt(x + 2), lambda x, y: 0.5 / math.sqrt(x + 2)),
    ("Power", {"power_param": {"power": 1.0, "scale": 3.0, "shift": -1.0}}, (-2, 2), [],
     lambda x: 3 * x - 1, lambda x, y: 3.0),
    ("Power", {"power_param": {"power": 0.0, "scale": 3.0, "shift": 2.0}}, (-2, 2), [],
     lambda x: 1.0, lambda x, y: 0.0),
    ("Power", {"power_param": {"power": 3.0, "scale": 0.0, "shift": 2.0}}, (-2, 2), [],
     lambda x: 8.0, lambda x, y: 0.0),
    ("Sigmoid", {}, (-6, 6), [], sigmoid, lambda x, y: y * (1 - y)),
    ("Swish", {}, (-3, 3), [], lambda x: x * sigmoid(x),
     lambda x, y: sigmoid(x) + x * sigmoid(x) * (1 - sigmoid(x))),
    ("Swish", {"swish_param": {"beta": 1.5}}, (-3, 3), [], lambda x: x * sigmoid(1.5 * x),
     lambda x, y: sigmoid(1.5 * x) + 1.5 * x * sigmoid(1.5 * x) * (1 - sigmoid(1.5 * x))),
    ("TanH", {}, (-3, 3), [], math.tanh, lambda x, y: 1 - math.tanh(x) ** 2),
]
IDS = [f"{r[0]}-{i}" for i, r in enumerate(ROWS)]


def _input(row, seed=3):
    lo, hi = row[2]
    x = rand(2, 3, 2, 3, seed=seed, lo=lo, hi=hi)
    for i, k in enumerate(row[3]):
        x.view(-1)[i] = k
    return x


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_forward_and_backward_match_caffe(row):
    type_name, params, _, _, f, df = row
    x = _input(row)
    layer, shapes = build(type_name, params, [x.shape])
    assert shapes == [tuple(x.shape)]
    ref = torch.tensor([f(v) for v in x.flatten().tolist()], dtype=torch.float64)
    xg = x.clone().requires_grad_()
    y = layer(xg)[0]
    torch.testing.assert_close(y.detach().flatten(), ref, rtol=1e-13, atol=1e-15)
    dy = rand(*x.shape, seed=7)
    y.backward(dy)
    want = [d * df(v, w) for d, v, w in zip(dy.flatten().tolist(), x.flatten().tolist(),
                                            ref.tolist())]
    torch.testing.assert_close(xg.grad.flatten(), torch.tensor(want, dtype=torch.float64),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_gradcheck(row):
    x = _input(row).flatten()[len(row[3]):][:30].reshape(5, 2, 3)
    for k in row[3]:   # Caffe's "kink" care: no value within 0.05 of a non-smooth point
        x = torch.where((x - k).abs() < 0.05, x + 0.1, x)
    layer, _ = build(row[0], row[1], [x.shape])
    assert torch.autograd.gradcheck(lambda t: layer(t)[0], (x.requires_grad_(),))


def test_float32_forward_matches_the_float64_reference():
    x = rand(4, 5, seed=2, lo=-60, hi=60).float()
    for type_name in ("BNLL", "Sigmoid", "TanH", "ELU", "Swish"):
        layer, _ = build(type_name, {}, [x.shape])
        y = layer(x)[0]
        assert y.dtype == torch.float32 and torch.isfinite(y).all(), type_name
        # atol: the tanh form of Caffe's sigmoid loses float32 precision in its tails.
        torch.testing.assert_close(y, layer(x.double())[0].float(), rtol=2e-6, atol=1e-6)


def test_bnll_is_finite_far_out_and_its_gradient_saturates():
    x = torch.tensor([-800.0, -60.0, 60.0, 800.0], dtype=torch.float64, requires_grad=True)
    layer, _ = build("BNLL", {}, [x.shape])
    y = layer(x)[0]
    assert torch.isfinite(y).all() and y[3].item() == 800.0 and y[0].item() == 0.0
    y.sum().backward()
    assert x.grad.tolist() == [0.0, math.exp(-60) / (math.exp(-60) + 1), 1.0, 1.0]


def test_power_shift_zero_backward_divides_by_x_as_caffe():
    # Caffe's power * y / x: 0/0 at x = 0 gives NaN where the true derivative is 0.
    x = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    layer, _ = build("Power", {"power_param": {"power": 3.0}}, [x.shape])
    layer(x)[0].sum().backward()
    assert math.isnan(x.grad[0].item()) and x.grad[1].item() == 3.0


def test_power_constant_of_a_negative_base_is_nan_as_c_pow():
    x = torch.zeros(3, dtype=torch.float64)
    layer, _ = build("Power", {"power_param": {"power": 0.5, "scale": 0.0, "shift": -4.0}},
                     [x.shape])
    assert torch.isnan(layer(x)[0]).all()


def test_clip_with_min_above_max_gives_min():
    x = torch.tensor([-1.0, 0.5, 3.0], dtype=torch.float64)
    layer, _ = build("Clip", {"clip_param": {"min": 1.0, "max": 0.0}}, [x.shape])
    assert layer(x)[0].tolist() == [1.0, 1.0, 1.0]


def test_threshold_forward_and_no_backward():
    x = torch.tensor([-1.0, 0.2, 0.2000001, 5.0], dtype=torch.float64)
    layer, _ = build("Threshold", {"threshold_param": {"threshold": 0.2}}, [x.shape])
    assert layer(x)[0].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert build("Threshold", {}, [x.shape])[0](x)[0].tolist() == [0.0, 1.0, 1.0, 1.0]
    y = layer(x.clone().requires_grad_())[0]
    with pytest.raises(NetError, match="Threshold has no backward"):
        y.sum().backward()


@pytest.mark.parametrize("type_name,params,words", [
    ("Clip", {"clip_param": {"min": 0.0}}, ["clip_param", "max"]),
    ("Exp", {"exp_param": {"base": -2.0}}, ["base must be strictly positive"]),
    ("Log", {"log_param": {"base": 0.0}}, ["base must be strictly positive"]),
    ("Log", {"log_param": {"base": 1.0}}, ["1 / log(base) is infinite"]),
])
def test_bad_parameters_name_the_layer(type_name, params, words):
    expect_net_error(lambda: build(type_name, params, [(2, 3)]), *words)


def test_absval_refuses_in_place_and_neurons_take_one_bottom():
    expect_net_error(lambda: build("AbsVal", {}, [(2, 3)], top=("b0",)), "in place")
    expect_net_error(lambda: build("TanH", {}, [(2, 3), (2, 3)]), "takes 1 bottom")


# -- PReLU ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,shared", [((2, 3, 4, 5), False), ((2, 3, 4, 5), True),
                                          ((4, 3), False), ((2, 3, 5), True)])
def test_prelu_against_loops(shape, shared):
    params = {"prelu_param": {"channel_shared": True}} if shared else {}
    layer, shapes = build("PReLU", params, [shape])
    assert shapes == [shape]
    slope = layer.blobs[0]
    assert tuple(slope.shape) == (() if shared else (shape[1],))
    assert (slope == 0.25).all()   # Caffe's default filler
    a = rand(*slope.shape, seed=5, lo=-0.5, hi=0.9)
    x = rand(*shape, seed=6)
    x.view(-1)[:2] = 0.0
    _with_blobs(layer, [a.clone().requires_grad_()])
    xg = x.clone().requires_grad_()
    y = layer(xg)[0]
    dy = rand(*shape, seed=8)
    y.backward(dy)
    ref, dref, da = torch.empty_like(x), torch.empty_like(x), torch.zeros_like(a)
    for idx in torch.cartesian_prod(*[torch.arange(s) for s in shape]).tolist():
        idx = tuple(idx)
        c = () if shared else (idx[1],)
        v = x[idx].item()
        ref[idx] = max(v, 0) + a[c].item() * min(v, 0)
        dref[idx] = dy[idx] * (1.0 if v > 0 else a[c].item())
        da[c] += dy[idx] * v * (v <= 0)
    torch.testing.assert_close(y.detach(), ref, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(xg.grad, dref, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(layer.blobs[0].grad, da, rtol=1e-12, atol=1e-14)
    xs = torch.where(x.abs() < 0.05, x + 0.1, x).requires_grad_()
    s = a.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t, u: _call_with_blobs(layer, t, [u]), (xs, s))


def test_prelu_filler_and_shape_errors():
    layer, _ = build("PReLU", {"prelu_param": {"filler": {"type": "constant", "value": -0.1}}},
                     [(2, 3)])
    assert torch.equal(layer.blobs[0].detach(), torch.full((3,), -0.1))
    expect_net_error(lambda: build("PReLU", {}, [(5,)]), "at least 2 axes")
    expect_net_error(lambda: build("PReLU", {}, [(1, 2, 3, 4, 5)]), "legacy")


def _with_blobs(layer, tensors):
    """Let ``layer`` read plain (float64, gradient-tracking) tensors as its blobs."""
    layer._modules.pop("blobs", None)
    object.__setattr__(layer, "blobs", list(tensors))


def _call_with_blobs(layer, x, tensors):
    _with_blobs(layer, tensors)
    return layer(x)[0]


# -- MVN -----------------------------------------------------------------------------------------
MVN_ROWS = [({}, (2, 3, 4, 5)), ({"across_channels": True}, (2, 3, 4, 5)),
            ({"normalize_variance": False}, (2, 3, 4, 5)),
            ({"normalize_variance": False, "across_channels": True}, (2, 3, 2)),
            ({"eps": 0.5}, (2, 3, 4)), ({"eps": 0.5, "across_channels": True}, (3, 2, 2, 2)),
            ({}, (6, 4))]


@pytest.mark.parametrize("params,shape", MVN_ROWS)
def test_mvn_against_caffe_formulas(params, shape):
    layer, shapes = build("MVN", {"mvn_param": params} if params else {}, [shape])
    assert shapes == [shape]
    x = rand(*shape, seed=9)
    dy = rand(*shape, seed=10)
    xg = x.clone().requires_grad_()
    y = layer(xg)[0]
    y.backward(dy)
    across, normalize = params.get("across_channels", False), params.get(
        "normalize_variance", True)
    eps = params.get("eps", 1e-9)
    rows = shape[0] * (1 if across or len(shape) < 2 else shape[1])
    xr, dyr = x.reshape(rows, -1).tolist(), dy.reshape(rows, -1).tolist()
    ref, dref = [], []
    for xs, ds in zip(xr, dyr):
        n = len(xs)
        m = sum(xs) / n
        sd = math.sqrt(sum((v - m) ** 2 for v in xs) / n) + eps if normalize else 1.0
        ys = [(v - m) / sd for v in xs]
        mean_d = sum(ds) / n
        mean_dy = sum(d * w for d, w in zip(ds, ys)) / n if normalize else 0.0
        ref += ys
        dref += [(d - mean_d - mean_dy * w) / sd for d, w in zip(ds, ys)]
    torch.testing.assert_close(y.detach().flatten(), torch.tensor(ref, dtype=torch.float64),
                               rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(xg.grad.flatten(), torch.tensor(dref, dtype=torch.float64),
                               rtol=1e-12, atol=1e-13)
    if eps < 1e-6:   # Caffe's backward is the exact derivative only when eps is negligible
        assert torch.autograd.gradcheck(lambda t: layer(t)[0], (x.requires_grad_(),))


def test_mvn_eps_is_added_after_the_square_root():
    x = torch.tensor([[[1.0, 3.0]]], dtype=torch.float64)    # mean 2, std 1
    layer, _ = build("MVN", {"mvn_param": {"eps": 1.0}}, [x.shape])
    assert layer(x)[0].tolist() == [[[-0.5, 0.5]]]
    expect_net_error(lambda: build("MVN", {}, [(1, 2, 3, 4, 5)]), "legacy")


def test_zero_axis_blobs_round_trip_a_caffemodel_as_caffe_writes_them(tmp_path):
    """PReLU's channel_shared slope and a num_axes 0 Scale are 0-axis blobs: Caffe's ToProto
    writes them with no shape (and 1 value), and FromProto reads that back as 0 axes."""
    import numpy as np
    import deeplab_caffe as dc
    from deeplab_caffe.io.blobs import blob_from_proto, blob_to_proto
    proto = blob_to_proto(np.float32(-0.5).reshape(()))
    assert not proto.has("shape") and proto.get("data").tolist() == [-0.5]
    array, disk, legacy = blob_from_proto(proto)
    assert array.shape == () and disk == () and not legacy
    text = ('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
            'layer { name: "p" type: "PReLU" bottom: "x" top: "y" '
            'prelu_param { channel_shared: true } }\n'
            'layer { name: "s" type: "Scale" bottom: "y" top: "z" '
            'scale_param { num_axes: 0 bias_term: true } }\n')
    net = dc.Net(text)
    with torch.no_grad():
        net.params["p"][0].fill_(-0.3)
        net.params["s"][0].fill_(2.0)
        net.params["s"][1].fill_(-1.0)
    net.save(str(tmp_path / "m.caffemodel"))
    loaded = dc.Net(text, weights=str(tmp_path / "m.caffemodel"))
    assert [tuple(b.shape) for b in loaded.params["p"] + loaded.params["s"]] == [(), (), ()]
    x = torch.tensor([[-1.0, 0.0, 2.0], [3.0, -2.0, 1.0]])
    # 2 * prelu(x) - 1 with slope -0.3
    torch.testing.assert_close(loaded.forward(x=x)["z"],
                               torch.tensor([[-0.4, -1.0, 3.0], [5.0, 0.2, 1.0]]))


@requires_cuda
def test_cuda_matches_cpu():
    for row in ROWS:
        x = _input(row)
        layer, _ = build(row[0], row[1], [x.shape])
        dy = rand(*x.shape, seed=7)
        outs = []
        for device in ("cpu", "cuda"):
            xg = x.to(device).requires_grad_()
            y = layer.to(device)(xg)[0]
            y.backward(dy.to(device))
            outs.append((y.detach().cpu(), xg.grad.cpu()))
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-12, atol=1e-14, msg=row[0])
