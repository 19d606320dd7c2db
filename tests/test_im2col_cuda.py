"""CUDA kernels against their CPU twins (the reference); skipped without a GPU."""
import pytest
import torch

from deeplab_caffe.ops import col2im_hole, conv2d_hole, im2col_hole

from conftest import requires_cuda
from test_conv_hole import CASES, make
from test_im2col import GEOMS

pytestmark = requires_cuda


@pytest.mark.parametrize("shape,k,p,s,d", GEOMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_im2col_equals_cpu(shape, k, p, s, d, dtype):
    x = torch.randn(shape, dtype=dtype)
    got = im2col_hole(x.cuda(), k, p, s, d).cpu()
    assert torch.equal(got, im2col_hole(x, k, p, s, d))


@pytest.mark.parametrize("shape,k,p,s,d", GEOMS)
def test_cuda_col2im_equals_cpu_and_is_deterministic(shape, k, p, s, d):
    x = torch.randn(shape, dtype=torch.float64)
    cols = torch.randn_like(im2col_hole(x, k, p, s, d))
    ref = col2im_hole(cols, shape[2:], k, p, s, d)
    a = col2im_hole(cols.cuda(), shape[2:], k, p, s, d)
    b = col2im_hole(cols.cuda(), shape[2:], k, p, s, d)
    assert torch.equal(a, b)  # gather form: no atomics, same bits every run
    torch.testing.assert_close(a.cpu(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_cuda_conv_forward_backward_equals_cpu(case):
    torch.manual_seed(0)
    x, w, b, kw = make(case, torch.float64, requires_grad=True)
    y = conv2d_hole(x, w, b, **kw)
    gy = torch.randn_like(y)
    inputs = [t for t in (x, w, b) if t is not None]
    ref = torch.autograd.grad(y, inputs, gy)
    xc, wc = x.detach().cuda().requires_grad_(), w.detach().cuda().requires_grad_()
    bc = None if b is None else b.detach().cuda().requires_grad_()
    yc = conv2d_hole(xc, wc, bc, **kw)
    torch.testing.assert_close(yc.cpu(), y.detach(), rtol=1e-10, atol=1e-10)
    got = torch.autograd.grad(yc, [t for t in (xc, wc, bc) if t is not None], gy.cuda())
    for g, r in zip(got, ref):
        torch.testing.assert_close(g.cpu(), r, rtol=1e-10, atol=1e-10)


def test_cuda_conv_large_chunked_float32():
    # Bigger than the default 32 MB column budget: exercises row blocks on the GPU.
    torch.manual_seed(1)
    x = torch.randn(2, 64, 129, 129, device="cuda")
    w = torch.randn(64, 64, 3, 3, device="cuda") * 0.05
    ref = torch.nn.functional.conv2d(x, w, padding=2, dilation=2)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.testing.assert_close(conv2d_hole(x, w, pad=2, hole=2), ref, rtol=1e-4, atol=1e-4)


def test_cuda_device_mix_is_a_value_error():
    with pytest.raises(ValueError, match="x is on cuda.* but weight is on cpu"):
        conv2d_hole(torch.randn(1, 2, 5, 5, device="cuda"), torch.randn(2, 2, 3, 3))
