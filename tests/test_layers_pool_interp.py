"""Pooling, Interp and Padding against naive loop references written from Caffe's rules."""
import math
import random

import numpy as np
import pytest
import torch

from layer_util import build, distinct, expect_net_error

FLT_MAX = float(np.finfo(np.float32).max)


# -- Pooling ---------------------------------------------------------------------------------------
def caffe_pooled(size, k, s, p, any_pad, ceil_mode=True):
    out = int((math.ceil if ceil_mode else math.floor)((size + 2 * p - k) / s)) + 1
    if any_pad and (out - 1) * s >= size + p:
        out -= 1
    return out


def naive_pool(x, kernel, stride, pad, pool, ceil_mode=True):
    """Caffe's Forward_cpu loops: returns (top, argmax mask) as numpy float64."""
    x = x.detach().numpy()
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    any_pad = ph > 0 or pw > 0
    oh = caffe_pooled(H, kh, sh, ph, any_pad, ceil_mode)
    ow = caffe_pooled(W, kw, sw, pw, any_pad, ceil_mode)
    top = np.zeros((N, C, oh, ow))
    mask = -np.ones((N, C, oh, ow))
    for n in range(N):
        for c in range(C):
            for i in range(oh):
                for j in range(ow):
                    hs, ws = i * sh - ph, j * sw - pw
                    he, we = min(hs + kh, H + ph), min(ws + kw, W + pw)
                    size = (he - hs) * (we - ws)
                    hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, H), min(we, W)
                    if pool == "AVE":
                        with np.errstate(invalid="ignore"):     # 0 / 0 like Caffe
                            top[n, c, i, j] = x[n, c, hs:he, ws:we].sum() / np.float64(size)
                        continue
                    best = -FLT_MAX
                    for h in range(hs, he):
                        for w in range(ws, we):
                            if x[n, c, h, w] > best:
                                best, mask[n, c, i, j] = x[n, c, h, w], h * W + w
                    top[n, c, i, j] = best
    return top, mask


def pool_params(pool, k, s, p, **extra):
    prm = {"pool": pool, "kernel_h": k[0], "kernel_w": k[1], "stride_h": s[0], "stride_w": s[1],
           "pad_h": p[0], "pad_w": p[1]}
    prm.update(extra)
    return {"pooling_param": prm}


def random_configs(n, seed=1):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        k = (rnd.randint(1, 4), rnd.randint(1, 4))
        s = (rnd.randint(1, 4), rnd.randint(1, 4))
        p = (rnd.randint(0, k[0] - 1), rnd.randint(0, k[1] - 1))
        H, W = rnd.randint(max(1, k[0] - 2 * p[0]), 11), rnd.randint(max(1, k[1] - 2 * p[1]), 11)
        out.append((k, s, p, H, W))
    return out


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_pooling_matches_naive_random(pool):
    for idx, (k, s, p, H, W) in enumerate(random_configs(40)):
        x = distinct((2, 3, H, W), seed=idx)
        tops = ("out", "mask") if pool == "MAX" else ("out",)
        layer, shapes = build("Pooling", pool_params(pool, k, s, p), [x.shape], top=tops)
        got = layer(x)
        ref, ref_mask = naive_pool(x, k, s, p, pool)
        assert shapes[0] == ref.shape, (k, s, p, H, W)
        np.testing.assert_allclose(got[0].numpy(), ref, rtol=1e-13, atol=1e-15)
        if pool == "MAX":
            np.testing.assert_array_equal(got[1].numpy(), ref_mask)


def test_pooling_fast_and_general_paths_agree():
    # k3 s2 p1 (DeepLab) goes through PyTorch's kernels; the explicit-padding path must agree.
    x = distinct((2, 2, 13, 10), seed=3)
    for pool in ("MAX", "AVE"):
        layer, _ = build("Pooling", pool_params(pool, (3, 3), (2, 2), (1, 1)), [x.shape])
        g = layer._geometry(13, 10)
        fast = layer._ave(x, g, True) if pool == "AVE" else layer._max(x, g, True)[0]
        slow = layer._ave(x, g, False) if pool == "AVE" else layer._max(x, g, False)[0]
        torch.testing.assert_close(fast, slow, rtol=1e-14, atol=1e-15)


def test_pooling_floor_round_mode_and_global():
    x = distinct((1, 2, 9, 7), seed=4)
    layer, shapes = build("Pooling", pool_params("AVE", (2, 3), (2, 2), (1, 0),
                                                 round_mode="FLOOR"), [x.shape])
    ref, _ = naive_pool(x, (2, 3), (2, 2), (1, 0), "AVE", ceil_mode=False)
    assert shapes[0] == ref.shape
    np.testing.assert_allclose(layer(x)[0].numpy(), ref, rtol=1e-13)
    layer, shapes = build("Pooling", {"pooling_param": {"pool": "AVE", "global_pooling": True}},
                          [x.shape])
    assert shapes == [(1, 2, 1, 1)]
    torch.testing.assert_close(layer(x)[0], x.mean((2, 3), keepdim=True))


def test_pooling_empty_window_gives_minus_flt_max():
    # pad 0 and stride > kernel: Caffe keeps a last window that starts past the input.
    x = distinct((1, 1, 5, 5), seed=5)
    layer, shapes = build("Pooling", pool_params("MAX", (1, 1), (3, 3), (0, 0)), [x.shape],
                          top=("out", "mask"))
    assert shapes[0] == (1, 1, 3, 3)
    out, mask = layer(x)
    assert out[0, 0, 2, 2].item() == -FLT_MAX and mask[0, 0, 2, 2].item() == -1
    assert out[0, 0, 1, 1].item() == x[0, 0, 3, 3].item()


@pytest.mark.parametrize("sizes,k,s,p", [
    ([321, 161, 81, 41], 3, 2, 1),          # LargeFOV pool1-3 at 321
    ([513, 257, 129, 65], 3, 2, 1),         # LargeFOV at 513
    ([32, 16], 3, 2, 0),                    # CIFAR-10: ceil gives 16 (floor would give 15)
    ([306, 154, 78, 40], 2, 2, 1),          # DeepLab pool1-3 at 306
    ([40, 39], 2, 1, 0),                    # DeepLab pool4 (train)
    ([41, 41], 3, 1, 1),                    # pool4/pool5/pool5a
])
def test_pooling_deeplab_sizes(sizes, k, s, p):
    for a, b in zip(sizes, sizes[1:]):
        _, shapes = build("Pooling", {"pooling_param": {"pool": "MAX", "kernel_size": k,
                                                        "stride": s, "pad": p}},
                          [(1, 1, a, a)])
        assert shapes == [(1, 1, b, b)]


def test_pooling_deeplab_321_forward_matches_naive_on_a_strip():
    x = distinct((1, 1, 321, 5), seed=6)
    layer, _ = build("Pooling", pool_params("AVE", (3, 3), (2, 2), (1, 1)), [x.shape])
    out = layer(x)[0]
    assert out.shape == (1, 1, 161, 3)
    np.testing.assert_allclose(out.numpy(), naive_pool(x, (3, 3), (2, 2), (1, 1), "AVE")[0],
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("k,s,p", [((3, 3), (2, 2), (1, 1)), ((3, 2), (2, 1), (2, 1)),
                                   ((2, 2), (3, 3), (0, 0))])
def test_pooling_gradcheck(pool, k, s, p):
    # 8x8: no window lies wholly past the input (Caffe's AVE would divide 0 by 0 there).
    x = distinct((1, 2, 8, 8), seed=7).requires_grad_()
    layer, _ = build("Pooling", pool_params(pool, k, s, p), [x.shape])
    assert torch.autograd.gradcheck(lambda t: layer(t)[0], (x,))


def test_stochastic_pooling_test_and_train():
    x = torch.rand(2, 2, 6, 5, dtype=torch.float64)
    layer, shapes = build("Pooling", pool_params("STOCHASTIC", (3, 2), (2, 2), (0, 0)),
                          [x.shape])
    out = layer(x)[0]
    ref = np.zeros(shapes[0])
    xn = x.numpy()
    for i in range(shapes[0][2]):
        for j in range(shapes[0][3]):
            win = xn[:, :, 2 * i:min(2 * i + 3, 6), 2 * j:min(2 * j + 2, 5)]
            ref[:, :, i, j] = (win ** 2).sum((2, 3)) / (win.sum((2, 3)) + 1.1754943508222875e-38)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-13)
    # TRAIN samples an element with probability value / window sum: [1, 3] picks 3 75% of times.
    layer, _ = build("Pooling", pool_params("STOCHASTIC", (1, 2), (1, 2), (0, 0)),
                     [(4000, 1, 1, 2)], phase="TRAIN")
    torch.manual_seed(0)
    picks = layer(torch.tensor([1.0, 3.0]).repeat(4000, 1, 1, 1))[0]
    assert set(picks.unique().tolist()) <= {1.0, 3.0}
    assert 0.72 < (picks == 3.0).double().mean().item() < 0.78


def test_stochastic_pooling_test_on_non_positive_windows_master_and_fork():
    x = torch.tensor([[[[1.0, 3.0, -2.0, 1.0, -1.0, -1.0]]]])
    layer, _ = build("Pooling", pool_params("STOCHASTIC", (1, 2), (1, 2), (0, 0)), [x.shape])
    # BVLC master: a window whose sum is not positive gives 0.
    assert layer(x)[0].flatten().tolist() == [2.5, 0.0, 0.0]
    # DeepLab's fork (DeepLab v1 files): sum(x^2) / (FLT_MIN + sum(x)), whatever the sign.
    layer.spec.dialect = "deeplab_v1"
    out = layer(x)[0].flatten()
    assert out[0] == 2.5 and out[1] == -5.0 and out[2] == 2.0 / (-2.0 + 1.1754943508222875e-38)


def test_pooling_errors_name_the_layer():
    expect_net_error(lambda: build("Pooling", pool_params("MAX", (3, 3), (1, 1), (3, 3)),
                                   [(1, 1, 9, 9)]), "pad")
    expect_net_error(lambda: build("Pooling", {"pooling_param": {"pool": "MAX"}},
                                   [(1, 1, 9, 9)]), "kernel_size")
    expect_net_error(lambda: build("Pooling", {"pooling_param": {"global_pooling": True,
                                                                 "kernel_size": 2}},
                                   [(1, 1, 9, 9)]), "global_pooling")
    expect_net_error(lambda: build("Pooling", pool_params("STOCHASTIC", (3, 3), (1, 1), (1, 1)),
                                   [(1, 1, 9, 9)]), "padding")
    expect_net_error(lambda: build("Pooling", {"pooling_param": {"pool": "MIN",
                                                                 "kernel_size": 2}},
                                   [(1, 1, 9, 9)]), "MIN")
    expect_net_error(lambda: build("Pooling", {"pooling_param": {"kernel_size": 2}},
                                   [(1, 9, 9)]), "4-axis")


# -- Interp ----------------------------------------------------------------------------------------
def naive_interp(x, oh, ow, pad_beg, h_eff, w_eff):
    """DeepLab's caffe_cpu_interp2 written out per output pixel (float32 ratios)."""
    x = x.detach().numpy()
    f32 = np.float32
    rh = f32(h_eff - 1) / f32(oh - 1) if oh > 1 else f32(0)
    rw = f32(w_eff - 1) / f32(ow - 1) if ow > 1 else f32(0)
    o = -pad_beg
    out = np.zeros(x.shape[:2] + (oh, ow))
    if (h_eff, w_eff) == (oh, ow):
        return x[:, :, o:o + oh, o:o + ow].copy()
    for i in range(oh):
        hr = f32(rh * f32(i))
        h1 = int(hr)
        hp = 1 if h1 < h_eff - 1 else 0
        l1h = float(f32(hr - f32(h1)))
        l0h = 1.0 - l1h
        for j in range(ow):
            wr = f32(rw * f32(j))
            w1 = int(wr)
            wp = 1 if w1 < w_eff - 1 else 0
            l1w = float(f32(wr - f32(w1)))
            l0w = 1.0 - l1w
            a = x[:, :, o + h1, o + w1]
            b = x[:, :, o + h1, o + w1 + wp]
            c = x[:, :, o + h1 + hp, o + w1]
            d = x[:, :, o + h1 + hp, o + w1 + wp]
            out[:, :, i, j] = l0h * (l0w * a + l1w * b) + l1h * (l0w * c + l1w * d)
    return out


def interp(params, shape):
    return build("Interp", {"interp_param": params}, [shape])


@pytest.mark.parametrize("params,size_in,size_out", [
    ({"zoom_factor": 8}, 41, 321), ({"zoom_factor": 8}, 65, 513), ({"zoom_factor": 8}, 67, 529),
    ({"shrink_factor": 8}, 321, 41), ({"shrink_factor": 8, "pad_beg": -1}, 306, 39),
    ({"shrink_factor": 8}, 513, 65), ({"zoom_factor": 2}, 257, 513),
])
def test_interp_deeplab_sizes(params, size_in, size_out):
    _, shapes = interp(params, (1, 21, size_in, size_in))
    assert shapes == [(1, 21, size_out, size_out)]


def test_interp_label_shrink_is_exact_decimation():
    lab = torch.randint(0, 21, (2, 1, 321, 321)).double()
    layer, _ = interp({"shrink_factor": 8}, lab.shape)
    assert torch.equal(layer(lab)[0], lab[:, :, ::8, ::8])
    lab = torch.randint(0, 21, (1, 1, 306, 306)).float()
    layer, _ = interp({"shrink_factor": 8, "pad_beg": -1, "pad_end": 0}, lab.shape)
    assert torch.equal(layer(lab)[0], lab[:, :, 1::8, 1::8])


def test_interp_zoom_hits_the_input_grid():
    x = torch.randn(1, 3, 41, 41, dtype=torch.float64)
    layer, _ = interp({"zoom_factor": 8}, x.shape)
    y = layer(x)[0]
    assert y.shape == (1, 3, 321, 321)
    assert torch.equal(y[:, :, ::8, ::8], x)


@pytest.mark.parametrize("params,shape", [
    ({"zoom_factor": 3}, (2, 2, 5, 4)), ({"shrink_factor": 3}, (1, 2, 11, 9)),
    ({"height": 7, "width": 3}, (1, 2, 4, 6)), ({"height": 1, "width": 5}, (1, 1, 3, 3)),
    ({"zoom_factor": 2, "pad_beg": -2, "pad_end": -1}, (1, 2, 8, 9)),
    ({"shrink_factor": 2, "pad_beg": -1, "pad_end": -2}, (1, 2, 12, 10)),
    ({"height": 6, "width": 7, "pad_beg": -1, "pad_end": -1}, (1, 1, 8, 9)),
    ({"zoom_factor": 3, "shrink_factor": 2}, (1, 1, 9, 7)),
])
def test_interp_matches_naive(params, shape):
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    layer, shapes = interp(params, shape)
    y = layer(x)[0]
    assert tuple(y.shape) == shapes[0]
    pb, pe = params.get("pad_beg", 0), params.get("pad_end", 0)
    h_eff, w_eff = shape[2] + pb + pe, shape[3] + pb + pe
    np.testing.assert_allclose(y.numpy(), naive_interp(x, y.shape[2], y.shape[3], pb, h_eff,
                                                       w_eff), rtol=1e-13, atol=1e-14)


def test_interp_equal_size_copies_window_and_float32():
    x = torch.randn(1, 2, 6, 6)
    layer, shapes = interp({"height": 4, "width": 4, "pad_beg": -1, "pad_end": -1}, x.shape)
    assert torch.equal(layer(x)[0], x[:, :, 1:5, 1:5])
    layer, _ = interp({"zoom_factor": 4}, x.shape)
    y = layer(x)[0]
    assert y.dtype == torch.float32
    np.testing.assert_allclose(y.numpy(), naive_interp(x.double(), 21, 21, 0, 6, 6), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("params", [{"zoom_factor": 3}, {"shrink_factor": 2, "pad_beg": -1},
                                    {"height": 5, "width": 4, "pad_end": -2}])
def test_interp_gradcheck(params):
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    layer, _ = interp(params, x.shape)
    assert torch.autograd.gradcheck(lambda t: layer(t)[0], (x,))


def test_interp_errors():
    expect_net_error(lambda: interp({"zoom_factor": 2, "height": 3, "width": 3}, (1, 1, 5, 5)),
                     "exactly one")
    expect_net_error(lambda: interp({}, (1, 1, 5, 5)), "exactly one")
    expect_net_error(lambda: interp({"zoom_factor": 2, "pad_beg": 1}, (1, 1, 5, 5)), "pad_beg")
    expect_net_error(lambda: interp({"shrink_factor": 0}, (1, 1, 5, 5)), "shrink_factor")
    expect_net_error(lambda: interp({"zoom_factor": 2, "pad_beg": -3, "pad_end": -2},
                                    (1, 1, 5, 5)), "empty")


def test_interp_zoom_with_a_lone_height_ignores_it():
    # DeepLab's LayerSetUp checks has_zoom != (has_height && has_width): accepted, height unused.
    layer, shapes = interp({"zoom_factor": 2, "height": 3}, (1, 1, 5, 6))
    assert shapes == [(1, 1, 9, 11)]
    expect_net_error(lambda: interp({"height": 3}, (1, 1, 5, 5)), "height and width")


# -- Padding ---------------------------------------------------------------------------------------
def test_padding_deeplab_crop_529_to_514():
    x = torch.randn(1, 3, 529, 529)
    layer, shapes = build("Padding", {"padding_param": {"pad_beg": -7, "pad_end": -8}},
                          [x.shape])
    assert shapes == [(1, 3, 514, 514)]
    assert torch.equal(layer(x)[0], x[:, :, 7:521, 7:521])


def test_padding_positive_and_gradcheck():
    x = torch.randn(2, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    layer, shapes = build("Padding", {"padding_param": {"pad_beg": 2, "pad_end": 1}}, [x.shape])
    y = layer(x)[0]
    assert shapes == [(2, 2, 6, 7)] and y.shape == (2, 2, 6, 7)
    ref = torch.zeros(2, 2, 6, 7, dtype=torch.float64)
    ref[:, :, 2:5, 2:6] = x.detach()
    assert torch.equal(y.detach(), ref)
    assert torch.autograd.gradcheck(lambda t: layer(t)[0], (x,))
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    layer, _ = build("Padding", {"padding_param": {"pad_beg": -1, "pad_end": -2}}, [x.shape])
    assert torch.autograd.gradcheck(lambda t: layer(t)[0], (x,))


def test_padding_errors():
    expect_net_error(lambda: build("Padding", {"padding_param": {"pad_beg": -1, "pad_end": 1}},
                                   [(1, 1, 5, 5)]), "same sign")
    expect_net_error(lambda: build("Padding", {"padding_param": {"pad_beg": -3, "pad_end": -2}},
                                   [(1, 1, 5, 5)]), "leaves nothing")
