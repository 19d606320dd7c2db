"""Hole im2col / col2im against naive references, the adjoint identity, and argument errors."""
import random

import pytest
import torch
import torch.nn.functional as F

import deeplab_caffe
from deeplab_caffe.ops import col2im_hole, conv_output_size, im2col_hole


def ref_im2col(x, k, p, s, d):
    """Plain loops over taps and output positions (Caffe's definition, read straight off)."""
    n, c, h, w = x.shape
    oh, ow = conv_output_size((h, w), k, p, s, d)
    cols = torch.zeros(n, c * k[0] * k[1], oh * ow, dtype=x.dtype)
    for ci in range(c):
        for i in range(k[0]):
            for j in range(k[1]):
                row = (ci * k[0] + i) * k[1] + j
                for y in range(oh):
                    ih = y * s[0] - p[0] + i * d[0]
                    if not 0 <= ih < h:
                        continue
                    for z in range(ow):
                        iw = z * s[1] - p[1] + j * d[1]
                        if 0 <= iw < w:
                            cols[:, row, y * ow + z] = x[:, ci, ih, iw]
    return cols


def ref_col2im(cols, size, k, p, s, d):
    n = cols.shape[0]
    c = cols.shape[1] // (k[0] * k[1])
    h, w = size
    oh, ow = conv_output_size((h, w), k, p, s, d)
    x = torch.zeros(n, c, h, w, dtype=cols.dtype)
    for ci in range(c):
        for i in range(k[0]):
            for j in range(k[1]):
                row = (ci * k[0] + i) * k[1] + j
                for y in range(oh):
                    ih = y * s[0] - p[0] + i * d[0]
                    if not 0 <= ih < h:
                        continue
                    for z in range(ow):
                        iw = z * s[1] - p[1] + j * d[1]
                        if 0 <= iw < w:
                            x[:, ci, ih, iw] += cols[:, row, y * ow + z]
    return x


def random_geometries(count, seed):
    rng = random.Random(seed)
    out = [  # the interesting fixed cases first
        ((2, 3, 9, 9), (3, 3), (2, 2), (1, 1), (2, 2)),      # DeepLab conv5 (hole 2)
        ((1, 2, 13, 13), (3, 3), (12, 12), (1, 1), (12, 12)),  # LargeFOV fc6 (hole 12)
        ((1, 2, 11, 11), (4, 4), (6, 6), (1, 1), (4, 4)),    # DeepLab fc6 (4x4, hole 4)
        ((3, 4, 5, 7), (1, 1), (0, 0), (1, 1), (1, 1)),      # 1x1
        ((2, 3, 10, 8), (3, 2), (1, 0), (2, 3), (2, 1)),     # asymmetric everything
    ]
    while len(out) < count:
        k = (rng.randint(1, 4), rng.randint(1, 4))
        d = (rng.randint(1, 4), rng.randint(1, 4))
        p = (rng.randint(0, 4), rng.randint(0, 4))
        s = (rng.randint(1, 3), rng.randint(1, 3))
        ext = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)
        h = rng.randint(max(1, ext[0] - 2 * p[0]), max(1, ext[0] - 2 * p[0]) + 8)
        w = rng.randint(max(1, ext[1] - 2 * p[1]), max(1, ext[1] - 2 * p[1]) + 8)
        out.append(((rng.randint(1, 3), rng.randint(1, 4), h, w), k, p, s, d))
    return out


GEOMS = random_geometries(24, seed=1234)


@pytest.mark.parametrize("shape,k,p,s,d", GEOMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_im2col_matches_naive(shape, k, p, s, d, dtype):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=dtype)
    got = im2col_hole(x, k, p, s, d)
    assert torch.equal(got, ref_im2col(x, k, p, s, d))  # a copy: bit exact


@pytest.mark.parametrize("shape,k,p,s,d", GEOMS)
def test_im2col_agrees_with_unfold(shape, k, p, s, d):
    x = torch.randn(shape, dtype=torch.float64)
    ref = F.unfold(x, k, dilation=d, padding=p, stride=s)
    assert torch.equal(im2col_hole(x, k, p, s, d), ref)


@pytest.mark.parametrize("shape,k,p,s,d", GEOMS)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_col2im_matches_naive(shape, k, p, s, d, dtype, tol):
    torch.manual_seed(1)
    n, c, h, w = shape
    oh, ow = conv_output_size((h, w), k, p, s, d)
    cols = torch.randn(n, c * k[0] * k[1], oh * ow, dtype=dtype)
    got = col2im_hole(cols, (h, w), k, p, s, d)
    torch.testing.assert_close(got, ref_col2im(cols, (h, w), k, p, s, d), rtol=tol, atol=tol)


@pytest.mark.parametrize("shape,k,p,s,d", GEOMS[:12])
def test_adjoint_identity(shape, k, p, s, d):
    torch.manual_seed(2)
    x = torch.randn(shape, dtype=torch.float64)
    cols = im2col_hole(x, k, p, s, d)
    y = torch.randn_like(cols)
    lhs = (cols * y).sum()
    rhs = (x * col2im_hole(y, shape[2:], k, p, s, d)).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_non_contiguous_input():
    base = torch.randn(2, 9, 5, 12, dtype=torch.float64)
    x = base.permute(0, 3, 1, 2)[:, ::2]  # (2, 6, 9, 5), strided in every dim
    assert not x.is_contiguous()
    assert torch.equal(im2col_hole(x, 3, 1, 1, 2), ref_im2col(x.contiguous(), (3, 3), (1, 1),
                                                                (1, 1), (2, 2)))
    cols = torch.randn(2, 12 * 4, 3 * 3, dtype=torch.float64).transpose(1, 2).contiguous() \
        .transpose(1, 2)
    assert not cols.is_contiguous()
    torch.testing.assert_close(col2im_hole(cols, (4, 4), 2, 0, 1, 1),
                               ref_col2im(cols.contiguous(), (4, 4), (2, 2), (0, 0), (1, 1),
                                          (1, 1)))


def test_gradcheck_im2col_col2im():
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: im2col_hole(t, (2, 3), (1, 2), (2, 1), (2, 1)), (x,))
    cols = torch.randn(1, 12, 3 * 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: col2im_hole(t, (6, 5), (2, 3), (1, 2), (2, 1),
                                                          (2, 1)), (cols,))


def test_empty_batch():
    x = torch.randn(0, 3, 7, 7)
    cols = im2col_hole(x, 3, 1, 1, 2)
    assert cols.shape == (0, 27, 25)
    assert col2im_hole(cols, (7, 7), 3, 1, 1, 2).shape == (0, 3, 7, 7)


@pytest.mark.parametrize("kwargs,match", [
    (dict(kernel=3, hole=0), "hole must be >= 1"),
    (dict(kernel=3, stride=0), "stride must be >= 1"),
    (dict(kernel=0), "kernel must be >= 1"),
    (dict(kernel=3, pad=-1), "pad must be >= 0"),
    (dict(kernel=(3, 3, 3)), "kernel must be an int or an"),
    (dict(kernel=3.0), "kernel must be an int or an"),
    (dict(kernel=3, hole=4), "kernel extent 9 .* larger than the padded input height 7"),
    (dict(kernel=(1, 5), hole=(1, 3)), "kernel extent 13 .* larger than the padded input width 7"),
])
def test_im2col_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        im2col_hole(torch.randn(1, 1, 7, 7), **kwargs)


def test_kernel_level_checks_raise_value_error():
    # Calling the op directly still gives ValueError with the argument's name.
    with pytest.raises(ValueError, match="hole must be positive"):
        torch.ops.deeplab_caffe.im2col_hole(torch.randn(1, 1, 5, 5), [3, 3], [0, 0], [1, 1], [0, 1])
    with pytest.raises(ValueError, match="x must be float32 or float64"):
        im2col_hole(torch.ones(1, 1, 5, 5, dtype=torch.int32), 3)
    with pytest.raises(ValueError, match="x must be 4-D"):
        im2col_hole(torch.ones(5, 5), 3)
    with pytest.raises(ValueError, match="not a multiple of kernel_h"):
        col2im_hole(torch.ones(1, 10, 9), (5, 5), 3)
    with pytest.raises(ValueError, match="columns but the geometry gives"):
        col2im_hole(torch.ones(1, 9, 10), (5, 5), 3)


def test_meta_tensors_give_shapes():
    x = torch.empty(2, 3, 65, 65, device="meta")
    assert im2col_hole(x, 3, 12, 1, 12).shape == (2, 27, 65 * 65)


def test_build_info():
    info = deeplab_caffe.build_info()
    for key in ("with_cuda", "cuda_version", "compiler", "torch_version"):
        assert key in info
    assert isinstance(info["with_cuda"], bool)
    assert (info["cuda_version"] is None) == (not info["with_cuda"])
