"""DeepLab v1's score-handling layers (BiasChannel, AdaptiveBiasChannel, ChannelAggregator,
GainChannel, RelativeError) against naive references written from the fork's C++, and float64
gradchecks where the C++ has a backward."""
import math

import pytest
import torch

from deeplab_caffe.errors import NetError
from deeplab_caffe.layers.gain_channel import _Gain
from layer_util import build, expect_net_error


def scores(shape, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype)


def label_list(rows):
    return torch.tensor(rows, dtype=torch.float64).reshape(len(rows), len(rows[0]), 1, 1)


# -- BiasChannel ------------------------------------------------------------------------------
def test_bias_channel_matches_reference_and_passes_the_gradient():
    x = scores((2, 4, 3, 2), 0).requires_grad_()
    lst = label_list([[0, 2, 2, -1], [3, 255, -1, -1]])     # 2 twice: biased twice
    params = {"bias_channel_param": {"bg_bias": 0.5, "fg_bias": 3.0, "ignore_label": [255]}}
    layer, shapes = build("BiasChannel", params, [x.shape, lst.shape])
    assert shapes == [tuple(x.shape)]
    (out,) = layer(x, lst)
    ref = x.detach().clone()
    for n in range(2):
        for v in lst[n].reshape(-1).tolist():
            lab = int(v)
            if lab in (-1, 255):
                continue
            ref[n, lab] += 0.5 if lab == 0 else 3.0
    assert torch.equal(out, ref)
    assert torch.autograd.gradcheck(lambda s: layer(s, lst)[0], (x,))


def test_bias_channel_errors():
    x, lst = torch.zeros(1, 3, 2, 2), label_list([[4]]).float()
    layer, _ = build("BiasChannel", {}, [x.shape, lst.shape])
    expect_net_error(lambda: layer(x, lst), "unexpected label 4")
    expect_net_error(lambda: build("BiasChannel", {"bias_channel_param": {"fg_bias": -1.0}},
                                   [x.shape, lst.shape]), "fg_bias")
    expect_net_error(lambda: build("BiasChannel", {}, [x.shape, (1, 2, 2, 1)]), "label list")
    lst_grad = label_list([[1]]).requires_grad_()
    (out,) = layer(x, lst_grad)
    with pytest.raises(NetError, match="label input"):
        out.sum().backward()


# -- AdaptiveBiasChannel ----------------------------------------------------------------------
def adaptive_ref(x, lst, num_iter, bg, fg, suppress, margin, seed):
    """Loop version of the C++ on float32 lists; the shuffles replay torch.randperm(seed)."""
    torch.manual_seed(seed)
    n, c, h, w = x.shape
    hw = h * w
    out = x.clone()
    for i in range(n):
        labels = sorted(int(v) for v in lst[i].reshape(-1).tolist() if int(v) != -1)
        if not labels:
            continue
        s = [[float(v) for v in out[i, ch].reshape(-1)] for ch in range(c)]
        f32 = lambda v: float(torch.tensor(v, dtype=torch.float32))   # noqa: E731
        if suppress:
            low = [min(s[ch][p] for ch in range(c) if ch in labels) for p in range(hw)]
            for ch in range(c):
                if ch not in labels:
                    s[ch] = [f32(low[p] - margin) if s[ch][p] > low[p] else s[ch][p]
                             for p in range(hw)]
        m = [max(s[lab][p] for lab in labels) for p in range(hw)]
        mean0 = sum(m) / hw
        first = 1 if labels[0] == 0 else 0
        for _ in range(num_iter):
            perm = torch.randperm(len(labels) - first).tolist()
            labels = labels[:first] + [labels[first + j] for j in perm]
            for lab in labels:
                d = sorted(f32(m[p] - s[lab][p]) for p in range(hw))
                nth = int(f32((bg if lab == 0 else fg)) * hw)
                s[lab] = [f32(v + d[nth]) for v in s[lab]]
                m = [max(m[p], s[lab][p]) for p in range(hw)]
        shift = f32(mean0 - sum(m) / hw)
        for ch in range(c):
            out[i, ch] = torch.tensor([f32(v + shift) for v in s[ch]]).reshape(h, w)
    return out


@pytest.mark.parametrize("seed,suppress", [(0, True), (1, False), (2, True)])
def test_adaptive_bias_channel_matches_reference(seed, suppress):
    x = scores((2, 5, 3, 4), seed, torch.float32)
    lst = label_list([[0, 3, 1, -1], [4, 2, -1, -1]]).float()
    params = {"adaptive_bias_channel_param": {"num_iter": 3, "bg_portion": 0.4,
                                              "fg_portion": 0.2, "suppress_others": suppress,
                                              "margin_others": 1e-3}}
    layer, shapes = build("AdaptiveBiasChannel", params, [x.shape, lst.shape])
    assert shapes == [tuple(x.shape)]
    torch.manual_seed(seed)
    (out,) = layer(x.clone().requires_grad_(), lst)
    ref = adaptive_ref(x, lst, 3, 0.4, 0.2, suppress, 1e-3, seed)
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-6)
    assert not out.requires_grad             # the C++'s Backward is empty
    if suppress:        # absent classes never win
        assert set(out[1].reshape(5, -1).argmax(0).tolist()) <= {2, 4}


def test_adaptive_bias_channel_leaves_images_without_labels_alone():
    x = scores((1, 3, 2, 2), 5, torch.float32)
    layer, _ = build("AdaptiveBiasChannel", {}, [x.shape, (1, 2, 1, 1)])
    assert torch.equal(layer(x, -torch.ones(1, 2, 1, 1))[0], x)
    expect_net_error(lambda: layer(x, torch.full((1, 2, 1, 1), 3.0)), "unexpected label 3")
    expect_net_error(lambda: build("AdaptiveBiasChannel", {"adaptive_bias_channel_param": {
        "bg_portion": 1.5}}, [x.shape, (1, 2, 1, 1)]), "bg_portion")


# -- ChannelAggregator ------------------------------------------------------------------------
def test_channel_aggregator_matches_reference_and_gradcheck(tmp_path):
    path = tmp_path / "map.txt"
    path.write_text("0\n1 2 2\n3 4 x 0\n4 1.5 3\n")    # "x" and ".5" end a line's numbers
    x = scores((2, 5, 3, 2), 7).requires_grad_()
    params = {"channel_aggregator_param": {"label_map_file": str(path)}}
    layer, shapes = build("ChannelAggregator", params, [x.shape])
    assert shapes == [(2, 4, 3, 2)]
    groups = [[0], [1, 2, 2], [3, 4], [4, 1]]
    (out,) = layer(x)
    ref = torch.zeros(2, 4, 3, 2, dtype=torch.float64)
    for o, grp in enumerate(groups):
        for n in range(2):
            for i in range(3):
                for j in range(2):
                    vals = [float(x.detach()[n, ch, i, j]) for ch in grp]
                    mx = max(vals)
                    ref[n, o, i, j] = mx + math.log(sum(math.exp(v - mx) for v in vals))
    torch.testing.assert_close(out, ref)
    assert torch.autograd.gradcheck(lambda t: layer(t)[0], (x,))


def test_channel_aggregator_file_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1\n\n2\n")
    expect_net_error(lambda: build("ChannelAggregator", {"channel_aggregator_param": {
        "label_map_file": str(bad)}}, [(1, 3, 1, 1)]), "line 2")
    wide = tmp_path / "wide.txt"
    wide.write_text("0 7\n")
    expect_net_error(lambda: build("ChannelAggregator", {"channel_aggregator_param": {
        "label_map_file": str(wide)}}, [(1, 3, 1, 1)]), "channel 7")
    expect_net_error(lambda: build("ChannelAggregator", {"channel_aggregator_param": {
        "label_map_file": str(tmp_path / "none.txt")}}, [(1, 3, 1, 1)]), "cannot read")


# -- GainChannel ------------------------------------------------------------------------------
def gain_layer(c, **p):
    params = {"gain_channel_param": dict({"num_output_nz": 2, "gain_filler": {
        "type": "constant", "value": 1.0}}, **p)}
    layer, _ = build("GainChannel", params, [(2, c, 3, 2)])
    return layer


def test_gain_channel_forward_projects_the_stored_gains():
    layer = gain_layer(4, thresh=0.1)
    with torch.no_grad():
        layer.blobs[0].copy_(torch.tensor([2.0, -1.0, 0.05, 1.0]).reshape(1, 4, 1, 1))
    x = scores((2, 4, 3, 2), 1, torch.float32)
    (out,) = layer(x)
    clipped = [2.0, 0.1, 0.1, 1.0]
    g = [4 / sum(clipped) * v for v in clipped]              # norm_mean: mean 1
    assert torch.allclose(layer.blobs[0].reshape(-1), torch.tensor(g))
    ref = torch.stack([x[:, ch] * g[ch] for ch in range(4)], 1)
    torch.testing.assert_close(out, ref)


def test_gain_channel_backward_adds_drift_and_centers_as_the_cpp():
    layer = gain_layer(4, drift=0.5, norm_mean=True).double()
    with torch.no_grad():
        layer.blobs[0].copy_(torch.tensor([1.5, 0.5, 1.2, 0.8]).reshape(1, 4, 1, 1))
    x = scores((2, 4, 3, 2), 2).requires_grad_()
    (out,) = layer(x)
    dy = scores(out.shape, 3)
    out.backward(dy)
    g = layer.blobs[0].detach().reshape(-1).tolist()        # after the forward's projection
    d = [float((dy[:, ch] * x.detach()[:, ch]).sum()) for ch in range(4)]
    kth = sorted(g, reverse=True)[1]                        # num_output_nz = 2
    d = [v + (0.5 if g[ch] < kth else 0.0) for ch, v in enumerate(d)]
    mean = sum(d) / 4
    torch.testing.assert_close(layer.blobs[0].grad.reshape(-1),
                               torch.tensor([v - mean for v in d], dtype=torch.float64))
    torch.testing.assert_close(x.grad, dy * layer.blobs[0].detach())


def test_gain_channel_plain_gradcheck_and_errors():
    layer = gain_layer(3, norm_mean=False).double()
    with torch.no_grad():
        layer.blobs[0].copy_(torch.tensor([1.5, 0.5, 2.0]).reshape(1, 3, 1, 1))
    x = scores((2, 3, 3, 2), 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda t, g: _Gain.apply(t, g, layer), (x, layer.blobs[0]))
    (out,) = layer(x)
    out.sum().backward()        # through the layer: the same product rule
    torch.testing.assert_close(layer.blobs[0].grad, x.detach().sum((0, 2, 3), keepdim=True))
    expect_net_error(lambda: build("GainChannel", {"gain_channel_param": {"num_output_nz": 2}},
                                   [(1, 3, 1, 1)]), "gain_filler")
    expect_net_error(lambda: build("GainChannel", {"gain_channel_param": {
        "num_output_nz": 4, "gain_filler": {"type": "constant"}}}, [(1, 3, 1, 1)]),
        "num_output_nz")


# -- RelativeError ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_relative_error_matches_reference(seed):
    a, b = scores((2, 3, 2, 2), seed), scores((2, 3, 2, 2), seed + 10)
    layer, shapes = build("RelativeError", {}, [a.shape, b.shape])
    assert shapes == [(1, 1, 1, 1)]
    (out,) = layer(a, b)
    n = a.numel()
    nom = sum(((u - v) / math.sqrt(n)) ** 2 for u, v in zip(a.reshape(-1).tolist(),
                                                             b.reshape(-1).tolist()))
    den = max(sum((v / math.sqrt(n)) ** 2 for v in b.reshape(-1).tolist()), 1e-6)
    assert math.isclose(float(out), math.sqrt(nom / den), rel_tol=1e-12)
    tiny = layer(a, torch.full_like(b, 1e-5))[0]             # the floor on mean(b^2)
    assert math.isclose(float(tiny), math.sqrt(float(((a - 1e-5) ** 2).mean()) / 1e-6),
                        rel_tol=1e-9)
    (out,) = layer(a.clone().requires_grad_(), b)
    with pytest.raises(NetError, match="NOT_IMPLEMENTED"):
        out.sum().backward()
