"""BVLC's recurrent layers (RNN, LSTM and the LSTMUnit cell) against naive step-by-step
references written here, float64 gradchecks, and Caffe's blob layout (rnn_layer.cpp,
lstm_layer.cpp at BVLC master) through a .caffemodel round trip."""
import math

import pytest
import torch

import deeplab_caffe as dc
from deeplab_caffe.io.blobs import blob_to_proto
from deeplab_caffe.io.caffemodel import read_caffemodel
from deeplab_caffe.proto import wire
from deeplab_caffe.proto.message import Message
from deeplab_caffe.proto.schema import get_schema
from layer_util import build, expect_net_error

T, N, D, STATIC = 3, 2, 3, (2, 4)   # x is (T, N, 2, 3): the transforms flatten from axis 2
X_SHAPE = (T, N, 2, 3)
# A sequence starting at t=0 in both streams, the second stream restarting at t=2.
CONT = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)


def rand(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(shape, dtype=torch.float64, generator=g)


def sig(v):
    return 1.0 / (1.0 + math.exp(-v))


# -- naive references: one stream, one timestep at a time ------------------------------------
def naive_rnn(W, x, cont, x_static, states):
    h = [states[0][0, n] for n in range(cont.shape[1])]
    out = torch.zeros(cont.shape + (W["W_ho"].shape[0],), dtype=torch.float64)
    for t in range(cont.shape[0]):
        for n in range(cont.shape[1]):
            pre = W["W_hh"] @ (h[n] * cont[t, n]) + W["W_xh"] @ x[t, n].reshape(-1) + W["b_h"]
            if x_static is not None:
                pre = pre + W["W_xh_static"] @ x_static[n].reshape(-1)
            h[n] = torch.tanh(pre)
            out[t, n] = torch.tanh(W["W_ho"] @ h[n] + W["b_o"])
    return out, [torch.stack(h)[None]]


def naive_lstm(W, x, cont, x_static, states):
    h = [states[0][0, n] for n in range(cont.shape[1])]
    c = [states[1][0, n] for n in range(cont.shape[1])]
    out = torch.zeros(cont.shape + (W["W_hc"].shape[1],), dtype=torch.float64)
    for t in range(cont.shape[0]):
        for n in range(cont.shape[1]):
            gates = W["W_hc"] @ (h[n] * cont[t, n]) + W["W_xc"] @ x[t, n].reshape(-1) + W["b_c"]
            if x_static is not None:
                gates = gates + W["W_xc_static"] @ x_static[n].reshape(-1)
            i, f, o, g = gates.chunk(4)
            c[n] = cont[t, n] * torch.sigmoid(f) * c[n] + torch.sigmoid(i) * torch.tanh(g)
            h[n] = torch.sigmoid(o) * torch.tanh(c[n])
            out[t, n] = h[n]
    return out, [torch.stack(h)[None], torch.stack(c)[None]]


# One row per type: the naive reference, its recurrent states, and its blobs as Caffe's
# FillUnrolledNet creates them (param name, shape), K = x's size from axis 2, S = x_static's.
K, S = 6, 4
ROWS = {
    "RNN": (naive_rnn, 1, [("W_xh", (D, K)), ("b_h", (D,)), ("W_hh", (D, D)), ("W_ho", (D, D)),
                           ("b_o", (D,))], ("W_xh_static", (D, S))),
    "LSTM": (naive_lstm, 2, [("W_xc", (4 * D, K)), ("b_c", (4 * D,)), ("W_hc", (4 * D, D))],
             ("W_xc_static", (4 * D, S))),
}
CASES = [(ty, static, expose) for ty in ROWS for static in (False, True)
         for expose in (False, True)]


def expected_blobs(ty, static):
    _, _, blobs, static_blob = ROWS[ty]
    return blobs[:2] + [static_blob] + blobs[2:] if static else blobs


def make(ty, static=False, expose=False, extra=None, n=N, t=T):
    """The layer (float64, random blobs) and its bottoms."""
    params = {"recurrent_param": {"num_output": D, "expose_hidden": expose, **(extra or {})}}
    num_states = ROWS[ty][1]
    x, cont = rand(t, n, 2, 3, seed=1), CONT[:t, :n].clone()
    bottoms = [x, cont] + ([rand(n, *STATIC[1:], seed=2)] if static else [])
    if expose:
        bottoms += [rand(1, n, D, seed=3 + k, scale=0.5) for k in range(num_states)]
    tops = ["out"] + [f"state{k}" for k in range(num_states if expose else 0)]
    layer, shapes = build(ty, params, [b.shape for b in bottoms], top=tops)
    layer.double()
    with torch.no_grad():
        for k, b in enumerate(layer.blobs):
            b.copy_(rand(*b.shape, seed=10 + k, scale=0.6))
    return layer, shapes, bottoms


def reference(ty, layer, bottoms, states=None):
    static = bool(layer.static_input)
    W = dict(zip(layer.blob_names, (b.detach() for b in layer.blobs)))
    x_static = bottoms[2] if static else None
    if states is None:
        states = bottoms[2 + static:] or [torch.zeros(1, bottoms[0].shape[1], D,
                                                      dtype=torch.float64)] * ROWS[ty][1]
    return ROWS[ty][0](W, bottoms[0], bottoms[1], x_static, states)


@pytest.mark.parametrize("ty,static,expose", CASES)
def test_forward_matches_naive_and_caffe_blob_layout(ty, static, expose):
    layer, shapes, bottoms = make(ty, static, expose)
    assert [(name, tuple(b.shape)) for name, b in zip(layer.blob_names, layer.blobs)] == \
        expected_blobs(ty, static)
    tops = layer(*bottoms)
    assert [tuple(t.shape) for t in tops] == shapes
    assert shapes[0] == (T, N, D) and all(s == (1, N, D) for s in shapes[1:])
    out, finals = reference(ty, layer, bottoms)
    torch.testing.assert_close(tops[0], out, rtol=1e-12, atol=1e-12)
    for got, want in zip(tops[1:], finals if expose else []):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ty,static,expose", CASES)
def test_gradcheck_inputs_and_blobs(ty, static, expose):
    layer, _, bottoms = make(ty, static, expose)
    names = [f"blobs.{k}" for k in range(len(layer.blobs))]
    # x, x_static and every blob; cont and the exposed states take no gradient (below).
    wrt = [bottoms[0]] + ([bottoms[2]] if static else []) + [b.detach() for b in layer.blobs]
    wrt = [w.clone().requires_grad_() for w in wrt]

    def f(*args):
        x, rest = args[0], list(args[1:])
        xs = [rest.pop(0)] if static else []
        blobs = dict(zip(names, rest))
        full = [x, bottoms[1]] + xs + bottoms[2 + static:]
        return torch.func.functional_call(layer, blobs, tuple(full))[0]
    assert torch.autograd.gradcheck(f, wrt)


@pytest.mark.parametrize("ty", ROWS)
def test_exposed_states_carry_no_gradient(ty):
    # Caffe's RecurrentLayer shares only the data of h_0 / c_0 and h_T / c_T (ShareData).
    layer, _, bottoms = make(ty, expose=True)
    bottoms = [b.clone().requires_grad_() for b in bottoms]
    tops = layer(*bottoms)
    assert not any(t.requires_grad for t in tops[1:])
    tops[0].sum().backward()
    assert bottoms[0].grad is not None and bottoms[0].grad.abs().sum() > 0
    assert all(h.grad is None for h in bottoms[2:])
    assert bottoms[1].grad is None


@pytest.mark.parametrize("ty", ROWS)
def test_state_carries_over_forwards_like_caffe(ty):
    # Caffe's TestForward: a whole sequence at once equals one timestep per forward.
    layer, _, bottoms = make(ty)
    full = layer(*bottoms)[0]
    step, _, _ = make(ty, t=1)
    step.load_state_dict(layer.state_dict())
    for t in range(T):
        torch.testing.assert_close(step(bottoms[0][t:t + 1], bottoms[1][t:t + 1])[0],
                                   full[t:t + 1], rtol=1e-12, atol=1e-12)
    # All cont 0: every step starts afresh, so only the first matches.
    step.reset()
    for t in range(T):
        got = step(bottoms[0][t:t + 1], torch.zeros(1, N, dtype=torch.float64))[0]
        assert torch.allclose(got, full[t:t + 1], rtol=1e-12, atol=1e-12) == (t == 0)


@pytest.mark.parametrize("ty", ROWS)
def test_carried_state_when_streams_change_and_reset(ty):
    layer, _, bottoms = make(ty)

    def step(n, seed, states):
        x, cont = rand(T, n, 2, 3, seed=seed), torch.ones(T, n, dtype=torch.float64)
        got = layer(x, cont)[0]
        want, finals = reference(ty, layer, [x, cont], states)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        return finals

    _, first = reference(ty, layer, bottoms)
    layer(*bottoms)
    # Fewer streams: Blob::Reshape keeps the memory, the first streams' final states.
    second = step(1, 60, [s[:, :1] for s in first])
    # Back to two: the second stream finds what the first batch left there.
    step(2, 61, [torch.cat([a, b[:, 1:]], 1) for a, b in zip(second, first)])
    # More than ever held: fresh zeros.
    step(3, 62, None)
    # Caffe's Reset() zeroes the state.
    layer.reset()
    step(3, 63, None)


@pytest.mark.parametrize("ty", ROWS)
def test_fillers_and_errors(ty):
    layer, _, _ = make(ty, static=True)
    fresh, _ = build(ty, {"recurrent_param": {"num_output": D, "weight_filler": {
        "type": "constant", "value": 0.5}, "bias_filler": {"type": "constant", "value": -1.0}}},
        [X_SHAPE, (T, N), STATIC])
    for name, b in zip(fresh.blob_names, fresh.blobs):
        assert torch.equal(b.detach(), torch.full(b.shape, -1.0 if name[0] == "b" else 0.5))
    x, cont = rand(*X_SHAPE), CONT.clone()
    expect_net_error(lambda: build(ty, {"recurrent_param": {}}, [X_SHAPE, (T, N)]),
                     "num_output")
    expect_net_error(lambda: build(ty, {"recurrent_param": {"num_output": D}}, [(T,), (T, N)]),
                     "at least 2 axes")
    expect_net_error(lambda: build(ty, {"recurrent_param": {"num_output": D}},
                                   [X_SHAPE, (T, N, 1)]), "cont")
    expect_net_error(lambda: build(ty, {"recurrent_param": {"num_output": D}},
                                   [X_SHAPE, (T, N), (N + 1, 4)]), "x_static")
    expect_net_error(lambda: layer(x[:2], cont[:2], rand(*STATIC)), "timesteps changed")
    expect_net_error(lambda: layer(x, cont, rand(N, 5)), "input size")
    expose = {"recurrent_param": {"num_output": D, "expose_hidden": True}}
    states = ROWS[ty][1]
    expect_net_error(lambda: build(ty, expose, [X_SHAPE, (T, N)], top=["o"] * (1 + states)),
                     f"at least {2 + states} bottom")
    expect_net_error(lambda: build(ty, expose, [X_SHAPE, (T, N)] + [(1, N, D)] * states,
                                   top=["o"]), f"takes {1 + states} top")
    expect_net_error(lambda: build(ty, expose, [X_SHAPE, (T, N)] + [(1, N, D + 1)] * states,
                                   top=["o"] * (1 + states)), "hidden state input shape")


# -- LSTMUnit ----------------------------------------------------------------------------------
def naive_unit(c_prev, gates, cont):
    """Caffe's LSTMUnit, one value at a time."""
    Dh = c_prev.shape[2]
    c, h = torch.zeros_like(c_prev), torch.zeros_like(c_prev)
    for n in range(c_prev.shape[1]):
        for d in range(Dh):
            x = [gates[0, n, k * Dh + d].item() for k in range(4)]
            cn = cont[0, n].item()
            f = 0.0 if cn == 0 else cn * sig(x[1])
            c[0, n, d] = f * c_prev[0, n, d].item() + sig(x[0]) * math.tanh(x[3])
            h[0, n, d] = sig(x[2]) * math.tanh(c[0, n, d].item())
    return c, h


def naive_unit_backward(c_prev, gates, cont, c_diff, h_diff):
    """lstm_unit_layer.cpp's Backward_cpu, one value at a time."""
    Dh = c_prev.shape[2]
    cp_diff, g_diff = torch.zeros_like(c_prev), torch.zeros_like(gates)
    c, _ = naive_unit(c_prev, gates, cont)
    for n in range(c_prev.shape[1]):
        for d in range(Dh):
            i, fr, o, g = (sig(gates[0, n, d].item()), sig(gates[0, n, Dh + d].item()),
                           sig(gates[0, n, 2 * Dh + d].item()),
                           math.tanh(gates[0, n, 3 * Dh + d].item()))
            cn = cont[0, n].item()
            f = 0.0 if cn == 0 else cn * fr
            tc = math.tanh(c[0, n, d].item())
            ct = c_diff[0, n, d].item() + h_diff[0, n, d].item() * o * (1 - tc * tc)
            cp_diff[0, n, d] = ct * f
            g_diff[0, n, d] = ct * g * i * (1 - i)
            g_diff[0, n, Dh + d] = ct * c_prev[0, n, d].item() * f * (1 - f)
            g_diff[0, n, 2 * Dh + d] = h_diff[0, n, d].item() * tc * o * (1 - o)
            g_diff[0, n, 3 * Dh + d] = ct * i * (1 - g * g)
    return cp_diff, g_diff


@pytest.mark.parametrize("cont", [[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
def test_lstm_unit_forward_and_gradcheck(cont):
    # Caffe's TestLSTMUnitGradient / ...NonZeroCont: 3 streams, 7 cells.
    c_prev, gates = rand(1, 3, 7, seed=4), rand(1, 3, 28, seed=5)
    cont = torch.tensor([cont], dtype=torch.float64)
    layer, shapes = build("LSTMUnit", {}, [c_prev.shape, gates.shape, cont.shape],
                          top=["c", "h"])
    assert shapes == [(1, 3, 7), (1, 3, 7)]
    for got, want in zip(layer(c_prev, gates, cont), naive_unit(c_prev, gates, cont)):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)
    wrt = (c_prev.clone().requires_grad_(), gates.clone().requires_grad_())
    assert torch.autograd.gradcheck(lambda c, g: torch.cat(layer(c, g, cont), -1), wrt)


def test_lstm_unit_backward_is_caffes_for_fractional_cont():
    # Caffe's forget-gate diff uses f * (1 - f) with f = cont * sigmoid: not the true gradient
    # when 0 < cont < 1.  We keep Caffe's.
    c_prev, gates = rand(1, 2, 3, seed=6), rand(1, 2, 12, seed=7)
    cont = torch.tensor([[0.5, 1.0]], dtype=torch.float64)
    c_diff, h_diff = rand(1, 2, 3, seed=8), rand(1, 2, 3, seed=9)
    layer, _ = build("LSTMUnit", {}, [c_prev.shape, gates.shape, cont.shape], top=["c", "h"])
    cg, gg, kg = (t.clone().requires_grad_() for t in (c_prev, gates, cont))
    c, h = layer(cg, gg, kg)
    torch.autograd.backward([c, h], [c_diff, h_diff])
    want_c, want_g = naive_unit_backward(c_prev, gates, cont, c_diff, h_diff)
    torch.testing.assert_close(cg.grad, want_c, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(gg.grad, want_g, rtol=1e-13, atol=1e-13)
    assert kg.grad is None
    true = torch.autograd.functional.vjp(
        lambda g: torch.cat(naive_unit_autograd(c_prev, g, cont), -1), gates,
        torch.cat([c_diff, h_diff], -1))[1]
    assert not torch.allclose(true[0, 0, 3:6], gg.grad[0, 0, 3:6])     # stream with cont 0.5
    torch.testing.assert_close(true[0, 1], gg.grad[0, 1], rtol=1e-12, atol=1e-12)


def naive_unit_autograd(c_prev, gates, cont):
    i, f, o, g = gates.chunk(4, -1)
    c = cont[..., None] * torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return c, torch.sigmoid(o) * torch.tanh(c)


def test_lstm_unit_shape_errors():
    ok = [(1, 2, 3), (1, 2, 12), (1, 2)]
    for k, bad in ((1, (1, 2, 11)), (2, (1, 2, 1)), (0, (2, 2, 3)), (2, (1, 3))):
        shapes = list(ok)
        shapes[k] = bad
        expect_net_error(lambda: build("LSTMUnit", {}, shapes, top=["c", "h"]), f"bottom[{k}]")
    expect_net_error(lambda: build("LSTMUnit", {}, ok, top=["c"]), "takes 2 top")


# -- a net and its .caffemodel -----------------------------------------------------------------
NET = """
layer { name: "in" type: "Input" top: "x" top: "cont" top: "s"
        input_param { shape { dim: 3 dim: 2 dim: 2 dim: 3 } shape { dim: 3 dim: 2 }
                      shape { dim: 2 dim: 4 } } }
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" bottom: "s" top: "h"
        recurrent_param { num_output: 3 weight_filler { type: "uniform" min: -0.5 max: 0.5 }
                          bias_filler { type: "constant" value: 0.1 } } }
layer { name: "rnn" type: "RNN" bottom: "h" bottom: "cont" top: "o"
        recurrent_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 } } }
"""


def test_caffemodel_in_caffes_layout_loads_and_round_trips(tmp_path):
    # A .caffemodel as Caffe writes one: each layer's blobs in the unrolled net's order.
    arrays = {"lstm": [rand(*s, seed=20 + k, scale=0.4).float()
                       for k, (_, s) in enumerate(expected_blobs("LSTM", True))],
              "rnn": [rand(*(s[0], D) if n == "W_xh" else s, seed=30 + k, scale=0.4).float()
                      for k, (n, s) in enumerate(expected_blobs("RNN", False))]}
    layers = [Message("LayerParameter", {"name": name, "type": name.upper(),
                                          "blobs": [blob_to_proto(a) for a in blobs]})
              for name, blobs in arrays.items()]
    path = tmp_path / "caffe.caffemodel"
    path.write_bytes(wire.encode(Message("NetParameter", {"name": "seq", "layer": layers}),
                                 get_schema("bvlc")))
    net = dc.Net(NET, weights=str(path))
    for name, blobs in arrays.items():
        assert [tuple(p.shape) for p in net.params[name]] == [tuple(a.shape) for a in blobs]
        for p, a in zip(net.params[name], blobs):
            assert torch.equal(p.detach(), a)
    x, s = rand(*X_SHAPE, seed=40).float(), rand(*STATIC, seed=41).float()
    o = net.forward(x=x, cont=CONT.float(), s=s)["o"]
    lstm = dict(zip(net.layers[1].blob_names, (a.double() for a in arrays["lstm"])))
    rnn = dict(zip(net.layers[2].blob_names, (a.double() for a in arrays["rnn"])))
    zeros = [torch.zeros(1, N, D, dtype=torch.float64)] * 2
    h, _ = naive_lstm(lstm, x.double(), CONT, s.double(), zeros)
    want, _ = naive_rnn(rnn, h, CONT, None, zeros[:1])
    torch.testing.assert_close(o.double(), want, rtol=1e-5, atol=1e-6)
    out = tmp_path / "ours.caffemodel"
    net.save(str(out))
    saved = read_caffemodel(str(out))
    for name, blobs in arrays.items():
        assert [tuple(b.shape) for b in saved.layer(name).blobs] == \
            [tuple(a.shape) for a in blobs]
    again = dc.Net(NET, weights=str(out))
    for name in arrays:
        for p, q in zip(again.params[name], net.params[name]):
            assert torch.equal(p, q)


TRAIN_NET = """
layer { name: "in" type: "Input" top: "x" top: "cont" top: "y"
        input_param { shape { dim: 3 dim: 2 dim: 2 dim: 3 } shape { dim: 3 dim: 2 }
                      shape { dim: 3 dim: 2 dim: 3 } } }
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
        recurrent_param { num_output: 3 weight_filler { type: "uniform" min: -0.5 max: 0.5 }
                          bias_filler { type: "uniform" min: -0.5 max: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "h" bottom: "y" top: "loss" }
"""


def test_train_net_backward_through_time():
    torch.manual_seed(3)
    net = dc.Net(TRAIN_NET, phase="TRAIN")
    x, y = rand(*X_SHAPE, seed=50).float(), rand(T, N, D, seed=51).float()
    net.forward(x=x, cont=CONT.float(), y=y)
    net.backward()
    W = {n: p.detach().double().requires_grad_()
         for n, p in zip(net.layers[1].blob_names, net.params["lstm"])}
    zeros = [torch.zeros(1, N, D, dtype=torch.float64)] * 2
    h, _ = naive_lstm(W, x.double(), CONT, None, zeros)
    loss = ((h - y.double()) ** 2).sum() / 2 / T    # EuclideanLoss divides by bottom num (T)
    torch.testing.assert_close(net.loss.double(), loss.detach(), rtol=1e-5, atol=1e-6)
    loss.backward()
    for name, p in zip(net.layers[1].blob_names, net.params["lstm"]):
        torch.testing.assert_close(p.grad.double(), W[name].grad, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    for case in CASES:
        layer, _, bottoms = make(*case)
        # The second call continues the sequences: the carried state too.
        calls = [bottoms, [bottoms[0], torch.ones_like(bottoms[1])] + bottoms[2:]]
        cpu = [layer(*c) for c in calls]
        layer.reset()
        layer.cuda()
        gpu = [layer(*(b.cuda() for b in c)) for c in calls]
        for a, b in zip(cpu, gpu):
            for x, y in zip(a, b):
                assert y.is_cuda
                torch.testing.assert_close(y.cpu(), x, rtol=1e-10, atol=1e-12)
