"""Deconvolution (BVLC master's deconv_layer.cpp) against a naive scatter loop on both engines
(CAFFE: our hole col2im; CUDNN / DEFAULT: PyTorch's conv_transpose2d), float64 gradcheck, and the
CUDA kernels (GPU or emulated build) against the CPU twin."""
import itertools

import pytest
import torch

from layer_util import build, expect_net_error


def rand(*shape, seed=0):
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def naive_deconv(x, w, b, stride, pad, hole, group):
    """Scatter every input value through the kernel: the adjoint of a convolution."""
    N, C, H, W = x.shape
    cg, og = C // group, w.shape[1]
    kh, kw = w.shape[2:]
    oh = stride[0] * (H - 1) + hole[0] * (kh - 1) + 1 - 2 * pad[0]
    ow = stride[1] * (W - 1) + hole[1] * (kw - 1) + 1 - 2 * pad[1]
    y = torch.zeros(N, og * group, oh, ow, dtype=x.dtype)
    for n, c, i, j, o, p, q in itertools.product(range(N), range(C), range(H), range(W),
                                                 range(og), range(kh), range(kw)):
        r, s = i * stride[0] - pad[0] + p * hole[0], j * stride[1] - pad[1] + q * hole[1]
        if 0 <= r < oh and 0 <= s < ow:
            y[n, (c // cg) * og + o, r, s] += x[n, c, i, j] * w[c, o, p, q]
    if b is not None:
        y += b.view(1, -1, 1, 1)
    return y



# -- Deconvolution ------------------------------------------------------------------------------
DECONV = [
    # (convolution_param, bottom shape)
    ({"num_output": 4, "kernel_size": 3, "stride": 2, "pad": 1}, (2, 3, 4, 5)),
    ({"num_output": 6, "kernel_size": [3, 2], "stride": [2, 1], "pad": [1, 0],
      "dilation": [2, 1], "group": 2}, (1, 4, 3, 4)),
    ({"num_output": 2, "kernel_h": 4, "kernel_w": 3, "stride_h": 3, "stride_w": 2, "pad_h": 2,
      "pad_w": 1, "bias_term": False}, (2, 2, 3, 3)),
    ({"num_output": 3, "kernel_size": 1}, (1, 2, 3, 3)),
]


def _pairs(p):
    def two(name, default):
        if f"{name}_h" in p:
            return (p[f"{name}_h"], p[f"{name}_w"])
        v = p.get(name if name != "kernel" else "kernel_size", default)
        v = v if isinstance(v, list) else [v]
        return (v[0], v[-1])
    return (two("kernel", None), two("stride", 1), two("pad", 0),
            tuple(p.get("dilation", [1, 1])) if isinstance(p.get("dilation"), list)
            else (p.get("dilation", 1),) * 2)


@pytest.mark.parametrize("engine", ["CAFFE", "CUDNN", "DEFAULT"])
@pytest.mark.parametrize("params,shape", DECONV)
def test_deconvolution_against_naive_scatter(params, shape, engine):
    filler = {"type": "gaussian", "std": 1.0}
    p = dict(params, engine=engine, weight_filler=filler, bias_filler=filler)
    layer, tops = build("Deconvolution", {"convolution_param": p}, [shape])
    k, s, pad, hole = _pairs(params)
    group = params.get("group", 1)
    w = layer.blobs[0]
    assert tuple(w.shape) == (shape[1], params["num_output"] // group) + k   # Caffe's layout
    b = layer.blobs[1] if params.get("bias_term", True) else None
    assert len(layer.blobs) == (2 if b is not None else 1)
    x = rand(*shape, seed=1).float()
    ref = naive_deconv(x.double(), w.detach().double(), None if b is None else b.detach().double(),
                       s, pad, hole, group)
    assert tops == [tuple(ref.shape)]
    torch.testing.assert_close(layer(x)[0].double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("params,shape", DECONV[:3])
def test_deconvolution_backward_caffe_engine_matches_torch_and_gradcheck(params, shape):
    filler = {"type": "gaussian", "std": 1.0}
    grads = {}
    for engine in ("CAFFE", "CUDNN"):
        torch.manual_seed(0)
        p = dict(params, engine=engine, weight_filler=filler, bias_filler=filler)
        layer, _ = build("Deconvolution", {"convolution_param": p}, [shape])
        layer.double()
        x = rand(*shape, seed=2).requires_grad_()
        y = layer(x)[0]
        (y * rand(*y.shape, seed=3)).sum().backward()
        grads[engine] = [x.grad] + [bl.grad for bl in layer.blobs]
        if engine == "CAFFE":
            blobs = [bl.detach().clone().requires_grad_() for bl in layer.blobs]

            def run(x, *bl):
                for dst, src in zip(layer.blobs, bl):
                    dst.data = src.data
                from deeplab_caffe.ops import conv_transpose2d_hole
                _, s, pad, hole = _pairs(params)
                return conv_transpose2d_hole(x, bl[0], bl[1] if len(bl) > 1 else None, s, pad,
                                             hole, params.get("group", 1))
            assert torch.autograd.gradcheck(run, [x.detach().requires_grad_()] + blobs)
    for a, b in zip(grads["CAFFE"], grads["CUDNN"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_deconvolution_errors_name_the_layer():
    expect_net_error(lambda: build("Deconvolution", {"convolution_param": {"kernel_size": 2}},
                                   [(1, 2, 3, 3)]), "Deconvolution needs", "num_output")
    expect_net_error(lambda: build("Deconvolution", {"convolution_param": {
        "num_output": 3, "kernel_size": 2, "group": 2}}, [(1, 2, 3, 3)]), "divisible by group")
    expect_net_error(lambda: build("Deconvolution", {"convolution_param": {
        "num_output": 2, "kernel_size": 1, "pad": 1}}, [(1, 2, 1, 1)]), "not positive")


def test_deconvolution_caffe_engine_on_the_cuda_kernels_matches_cpu(backend):
    """Engine CAFFE's three pieces (col2im forward, im2col input gradient, weight gradient) on
    the CUDA kernels (a GPU, or the emulated build) against the CPU twin."""
    from deeplab_caffe.ops import conv_transpose2d_hole
    geom = dict(stride=(2, 3), pad=(1, 2), hole=(2, 1), group=2)
    x, w, b = rand(2, 4, 5, 4, seed=20), rand(4, 3, 3, 4, seed=21), rand(6, seed=22)
    xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
    y = conv_transpose2d_hole(xs, ws, bs, **geom)
    gy = rand(*y.shape, seed=23)
    y.backward(gy)
    args = ([2, 3], [1, 2], [2, 1], 2)
    dev = backend.to
    if backend.name == "cuda":
        xd, wd, bd = (dev(t).requires_grad_() for t in (x, w, b))
        yd = conv_transpose2d_hole(xd, wd, bd, **geom)
        yd.backward(dev(gy))
        got = [yd, xd.grad, wd.grad, bd.grad]
    else:
        top = dev(torch.empty(y.shape, dtype=x.dtype))
        yd = backend.ops.conv2d_hole_backward(dev(x), top, dev(w), *args,
                                              [True, False, False])[0] + dev(b).view(1, -1, 1, 1)
        gx = backend.ops.conv2d_hole(dev(gy), dev(w), None, *args)
        gw = backend.ops.conv2d_hole_backward(dev(x), dev(gy), dev(w), *args,
                                              [False, True, False])[1]
        got = [yd, gx, gw, dev(gy).sum((0, 2, 3))]
    for a, e in zip(got, [y, xs.grad, ws.grad, bs.grad]):
        torch.testing.assert_close(a.cpu(), e.detach(), rtol=1e-12, atol=1e-12)
