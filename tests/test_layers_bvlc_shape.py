"""BVLC master's shape layers (Crop, Reshape, Reduction, Tile, Embed, Filter,
BatchReindex, Im2col, Parameter, SPP, ArgMax) against naive loop references written from the
C++ (src/caffe/layers/*_layer.cpp), and float64 gradcheck.  One table row per case: type, params,
bottoms, the naive reference of the tops."""
import itertools
import math

import pytest
import torch

from deeplab_caffe.errors import NetError
from layer_util import build, distinct, expect_net_error


def rand(*shape, seed=0):
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


# -- naive references ---------------------------------------------------------------------------
def naive_im2col(x, k, pad, stride, hole):
    N, C, H, W = x.shape
    oh = (H + 2 * pad[0] - (hole[0] * (k[0] - 1) + 1)) // stride[0] + 1
    ow = (W + 2 * pad[1] - (hole[1] * (k[1] - 1) + 1)) // stride[1] + 1
    y = torch.zeros(N, C * k[0] * k[1], oh, ow, dtype=x.dtype)
    for n, c, p, q, i, j in itertools.product(range(N), range(C), range(k[0]), range(k[1]),
                                              range(oh), range(ow)):
        r, s = i * stride[0] - pad[0] + p * hole[0], j * stride[1] - pad[1] + q * hole[1]
        if 0 <= r < H and 0 <= s < W:
            y[n, (c * k[0] + p) * k[1] + q, i, j] = x[n, c, r, s]
    return y


def naive_spp_level(x, bins, pool):
    """One SPP level with Caffe's pooling rules written out: kernel ceil(H/bins), stride =
    kernel, pad (kernel*bins - H + 1)//2, ceil output then the padded-window clip; MAX over the
    window clipped to the image, AVE divided by the window clipped to the padded image."""
    N, C, H, W = x.shape
    geo = []
    for size in (H, W):
        k = math.ceil(size / bins)
        geo.append((k, (k * bins - size + 1) // 2))
    any_pad = geo[0][1] > 0 or geo[1][1] > 0
    for a, size in enumerate((H, W)):
        k, p = geo[a]
        out = math.ceil((size + 2 * p - k) / k) + 1
        if any_pad and (out - 1) * k >= size + p:
            out -= 1
        geo[a] = (k, p, out)
    (kh, ph, oh), (kw, pw, ow) = geo
    y = torch.zeros(N, C, oh, ow, dtype=x.dtype)
    for n, c, i, j in itertools.product(range(N), range(C), range(oh), range(ow)):
        h0, w0 = i * kh - ph, j * kw - pw
        h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)
        area = (h1 - h0) * (w1 - w0)
        win = x[n, c, max(h0, 0):min(h1, H), max(w0, 0):min(w1, W)]
        y[n, c, i, j] = win.max() if pool == "MAX" else win.sum() / area
    return y


# -- Crop --------------------------------------------------------------------------------------
@pytest.mark.parametrize("crop_param,like,window", [
    ({}, (2, 3, 4, 5), (slice(None), slice(None), slice(0, 4), slice(0, 5))),
    ({"offset": [2]}, (2, 3, 4, 5), (slice(None), slice(None), slice(2, 6), slice(2, 7))),
    ({"offset": [1, 3]}, (2, 3, 5, 4), (slice(None), slice(None), slice(1, 6), slice(3, 7))),
    ({"axis": 1, "offset": [1, 0, 2]}, (9, 2, 6, 5), (slice(None), slice(1, 3), slice(0, 6),
                                                       slice(2, 7))),
    ({"axis": -1, "offset": [4]}, (2, 3, 6, 3), (slice(None), slice(None), slice(None),
                                                 slice(4, 7))),
    ({"axis": 0, "offset": [1]}, (1, 2, 3, 4), (slice(1, 2), slice(1, 3), slice(1, 4),
                                                slice(1, 5))),
])
def test_crop_window_and_backward(crop_param, like, window):
    x = rand(2, 3, 7, 8, seed=4)
    layer, tops = build("Crop", {"crop_param": crop_param}, [x.shape, like])
    ref = x[window]
    assert tops == [tuple(ref.shape)]
    xg = x.clone().requires_grad_()
    ref_like = torch.zeros(like, dtype=torch.float64, requires_grad=True)
    y = layer(xg, ref_like)[0]
    assert torch.equal(y, ref)
    y.sum().backward()
    mask = torch.zeros_like(x)
    mask[window] = 1
    assert torch.equal(xg.grad, mask) and ref_like.grad is None


def test_crop_errors():
    expect_net_error(lambda: build("Crop", {"crop_param": {"offset": [1, 2, 3]}},
                                   [(1, 2, 5, 5), (1, 2, 3, 3)]), "offsets")
    expect_net_error(lambda: build("Crop", {"crop_param": {"offset": [3]}},
                                   [(1, 2, 5, 5), (1, 2, 3, 3)]), "out of bounds", "axis 2")
    expect_net_error(lambda: build("Crop", {}, [(1, 2, 5, 5), (1, 2, 3)]), "needs its sizes")
    layer, tops = build("Crop", {}, [(1, 2, 5, 5), (1, 2, 3, 3, 7)])   # extra axes: unread
    assert tops == [(1, 2, 3, 3)]
    expect_net_error(lambda: build("Crop", {"crop_param": {"axis": 4}},
                                   [(1, 2, 5, 5), (1, 2, 3, 3)]), "out of range")


# -- Reshape (rows from test_reshape_layer.cpp's cases) -----------------------------------------
@pytest.mark.parametrize("reshape_param,bottom,top", [
    ({"shape": {"dim": [0, -1]}}, (2, 3, 6, 5), (2, 90)),
    ({"shape": {"dim": [6, 0, -1]}}, (2, 3, 6, 5), (6, 3, 10)),
    ({"shape": {"dim": [1]}, "axis": 0, "num_axes": 0}, (2, 3, 6, 5), (1, 2, 3, 6, 5)),
    ({"shape": {"dim": [1]}, "axis": -1, "num_axes": 0}, (2, 3, 6, 5), (2, 3, 6, 5, 1)),
    ({"shape": {"dim": [3, -1]}, "axis": 2}, (2, 3, 6, 5), (2, 3, 3, 10)),
    ({"shape": {"dim": [2, 3]}, "axis": 1, "num_axes": 1}, (2, 6, 5), (2, 2, 3, 5)),
    ({"shape": {"dim": [-1]}, "axis": -3}, (2, 3, 6, 5), (2, 3, 30)),
    ({"shape": {"dim": [2, 3]}, "axis": -2}, (2, 3, 6), (2, 3, 2, 3)),
    ({"shape": {"dim": []}, "axis": 1, "num_axes": 2}, (2, 1, 1, 5), (2, 5)),
])
def test_reshape_rules(reshape_param, bottom, top):
    x = rand(*bottom, seed=5)
    layer, tops = build("Reshape", {"reshape_param": reshape_param}, [bottom])
    assert tops == [top]
    y = layer(x)[0]
    assert y.shape == top and torch.equal(y.flatten(), x.flatten())


def test_reshape_errors():
    for rp, words in [({"shape": {"dim": [-1, -1]}}, ["more than one -1"]),
                      ({"shape": {"dim": [7, -1]}}, ["cannot infer"]),
                      ({"shape": {"dim": [4, 4]}}, ["values"]),
                      ({"shape": {"dim": [0, 0, 0, 0, 0]}}, ["no axis 4"])]:
        expect_net_error(lambda: build("Reshape", {"reshape_param": rp}, [(2, 3, 2, 2)]), *words)


# -- Reduction, Tile, Embed, Filter, BatchReindex, Im2col, SPP: one row each ------------------
def ref_reduction(op, axis, coeff):
    def ref(x):
        a = axis % x.dim()
        out = torch.zeros(x.shape[:a], dtype=x.dtype)
        for idx in itertools.product(*map(range, x.shape[:a])):
            vals = x[idx].flatten().tolist()
            f = {"SUM": lambda v: v, "ASUM": abs, "SUMSQ": lambda v: v * v,
                 "MEAN": lambda v: v}[op]
            total = sum(f(v) for v in vals)
            out[idx] = coeff * (total / len(vals) if op == "MEAN" else total)
        return [out]
    return ref


def ref_tile(axis, tiles):
    def ref(x):
        shape = list(x.shape)
        d = shape[axis]
        shape[axis] *= tiles
        out = torch.zeros(shape, dtype=x.dtype)
        for idx in itertools.product(*map(range, shape)):
            src = list(idx)
            src[axis] = idx[axis] % d
            out[idx] = x[tuple(src)]
        return [out]
    return ref


def ref_spp(height, pool):
    def ref(x):
        levels = [naive_spp_level(x, 2 ** l, pool) for l in range(height)]
        if height == 1:
            return levels
        return [torch.cat([v.reshape(x.shape[0], -1) for v in levels], 1)]
    return ref


def ref_filter(*bs):
    *data, sel = bs
    keep = [n for n in range(sel.shape[0]) if sel.flatten()[n] != 0]
    return [torch.stack([d[n] for n in keep]) for d in data]


def ref_reindex(data, permut):
    return [torch.stack([data[int(v)] for v in permut.tolist()])]


TABLE = [
    # (id, type, params, bottoms, top names, naive reference, bottoms that get a gradient)
    ("reduction-sum", "Reduction", {}, [rand(2, 3, 4)], 1, ref_reduction("SUM", 0, 1.0), [0]),
    ("reduction-asum", "Reduction", {"reduction_param": {"operation": "ASUM", "axis": 1,
                                                         "coeff": -0.5}},
     [distinct((2, 3, 4))], 1, ref_reduction("ASUM", 1, -0.5), [0]),
    ("reduction-sumsq", "Reduction", {"reduction_param": {"operation": "SUMSQ", "axis": -1,
                                                          "coeff": 2.0}},
     [rand(2, 3, 4)], 1, ref_reduction("SUMSQ", -1, 2.0), [0]),
    ("reduction-mean", "Reduction", {"reduction_param": {"operation": "MEAN", "axis": 2}},
     [rand(2, 3, 4, 2)], 1, ref_reduction("MEAN", 2, 1.0), [0]),
    ("tile-1", "Tile", {"tile_param": {"tiles": 3}}, [rand(2, 2, 3)], 1, ref_tile(1, 3), [0]),
    ("tile-neg", "Tile", {"tile_param": {"tiles": 2, "axis": -1}}, [rand(2, 2, 3)], 1,
     ref_tile(2, 2), [0]),
    ("im2col", "Im2col", {"convolution_param": {"kernel_size": [3, 2], "stride": [2, 1],
                                                "pad": [1, 0], "dilation": [1, 2]}},
     [rand(2, 2, 5, 6)], 1, lambda x: [naive_im2col(x, (3, 2), (1, 0), (2, 1), (1, 2))], [0]),
    ("spp-max", "SPP", {"spp_param": {"pyramid_height": 3}}, [distinct((2, 2, 7, 6))], 1,
     ref_spp(3, "MAX"), [0]),
    ("spp-ave", "SPP", {"spp_param": {"pyramid_height": 2, "pool": "AVE"}}, [rand(1, 2, 6, 5)],
     1, ref_spp(2, "AVE"), [0]),
    ("spp-one", "SPP", {"spp_param": {"pyramid_height": 1}}, [rand(2, 3, 4, 4)], 1,
     ref_spp(1, "MAX"), [0]),
    ("filter", "Filter", {}, [rand(4, 2, 3), rand(4, 5), torch.tensor([[1.], [0.], [3.], [1.]],
                                                                      dtype=torch.float64)],
     2, ref_filter, [0, 1]),
    ("batch-reindex", "BatchReindex", {},
     [rand(3, 2, 2), torch.tensor([2., 0., 2., 1., 2.], dtype=torch.float64)], 1, ref_reindex,
     [0]),
]


@pytest.mark.parametrize("case", TABLE, ids=[c[0] for c in TABLE])
def test_table_forward_and_gradcheck(case):
    _, type_name, params, bottoms, num_top, ref, grad_bottoms = case
    layer, tops = build(type_name, params, [b.shape for b in bottoms],
                        top=[f"t{i}" for i in range(num_top)])
    expected = ref(*bottoms)
    out = layer(*bottoms)
    for o, e in zip(out, expected):
        torch.testing.assert_close(o, e, rtol=1e-12, atol=1e-12)
    if type_name != "Filter":        # Filter's set-up tops keep all N (Caffe's first Reshape)
        assert tops == [tuple(e.shape) for e in expected]

    def run(*gb):
        bs = list(bottoms)
        for i, t in zip(grad_bottoms, gb):
            bs[i] = t
        return layer(*bs)
    inputs = [bottoms[i].clone().requires_grad_() for i in grad_bottoms]
    assert torch.autograd.gradcheck(run, inputs)


def test_spp_level_with_pad_not_below_kernel_is_caffes_error():
    # W = 5 in 4 bins: kernel 2, pad (8 - 5 + 1) // 2 = 2; Caffe's pooling CHECKs pad < kernel.
    expect_net_error(lambda: build("SPP", {"spp_param": {"pyramid_height": 3}}, [(1, 1, 8, 5)]),
                     "must be smaller than kernel", layer="layer1 level 2")


def test_filter_and_reindex_refuse_their_index_bottom():
    x = rand(3, 2).requires_grad_()
    sel = torch.tensor([1., 0., 1.], dtype=torch.float64, requires_grad=True)
    layer, tops = build("Filter", {}, [x.shape, sel.shape])
    assert tops == [(3, 2)]
    with pytest.raises(NetError, match="selector"):
        layer(x, sel)[0].sum().backward()
    layer, _ = build("BatchReindex", {}, [x.shape, sel.shape])
    with pytest.raises(NetError, match="index"):
        layer(x, sel)[0].sum().backward()
    expect_net_error(lambda: layer(x, torch.tensor([3.], dtype=torch.float64)), "out of range")
    expect_net_error(lambda: build("Filter", {}, [(3, 2), (3, 2)]), "every axis but the first")
    expect_net_error(lambda: build("Filter", {}, [(3, 2), (3, 1)], top=["a", "b"]),
                     "one top per filtered bottom")


def test_embed_against_naive_lookup():
    filler = {"type": "gaussian"}
    layer, tops = build("Embed", {"embed_param": {"num_output": 3, "input_dim": 5,
                                                  "weight_filler": filler,
                                                  "bias_filler": filler}}, [(2, 2)])
    assert tops == [(2, 2, 3)]
    w, b = layer.blobs
    assert tuple(w.shape) == (5, 3) and tuple(b.shape) == (3,)
    idx = torch.tensor([[4., 0.], [2.9, 4.]])      # 2.9 -> 2, as static_cast<int>
    y = layer(idx)[0]
    for i, j in itertools.product(range(2), range(2)):
        row = int(idx[i, j])
        assert torch.equal(y[i, j], w[row] + b)
    y.sum().backward()
    counts = torch.tensor([1., 0., 1., 0., 2.])
    assert torch.equal(w.grad, counts[:, None].expand(5, 3)) and torch.equal(b.grad,
                                                                             torch.full((3,), 4.))
    expect_net_error(lambda: layer(torch.tensor([5.])), "out of range")
    with pytest.raises(NetError, match="Embed input"):
        layer(idx.clone().requires_grad_())[0].sum().backward()


def test_parameter_layer_is_its_blob():
    layer, tops = build("Parameter", {"parameter_param": {"shape": {"dim": [2, 3]}}}, [],
                        top=["p"])
    assert tops == [(2, 3)] and torch.equal(layer.blobs[0].detach(), torch.zeros(2, 3))
    layer.blobs[0].data.fill_(2.0)
    y = layer()[0]
    assert torch.equal(y, torch.full((2, 3), 2.0))
    (y * 3).sum().backward()
    assert torch.equal(layer.blobs[0].grad, torch.full((2, 3), 3.0))


def test_bvlc_argmax_negative_axis_top_k():
    x = distinct((2, 3, 4))
    layer, tops = build("ArgMax", {"argmax_param": {"axis": -1, "top_k": 2}}, [x.shape])
    assert tops == [(2, 3, 2)]
    y = layer(x)[0]
    for i, j in itertools.product(range(2), range(3)):
        order = sorted(range(4), key=lambda k: -float(x[i, j, k]))[:2]
        assert y[i, j].tolist() == order

