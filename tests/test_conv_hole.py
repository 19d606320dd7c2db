"""The Caffe convolution (hole im2col + GEMM) against torch's dilated conv2d, gradients, chunking,
and argument errors."""
import json
import os
import random
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from deeplab_caffe.ops import conv2d_hole


def cases(count, seed):
    rng = random.Random(seed)
    out = [
        # (N, C, H, W, O, kernel, pad, stride, hole, group, bias)
        (2, 4, 9, 9, 6, (3, 3), (2, 2), (1, 1), (2, 2), 1, True),      # conv5 (hole 2)
        (1, 3, 13, 13, 5, (3, 3), (12, 12), (1, 1), (12, 12), 1, True),  # LargeFOV fc6
        (1, 3, 11, 11, 4, (4, 4), (6, 6), (1, 1), (4, 4), 1, True),    # DeepLab fc6
        (3, 8, 5, 7, 6, (1, 1), (0, 0), (1, 1), (1, 1), 2, True),      # 1x1 shortcut, groups
        (2, 6, 7, 6, 4, (1, 1), (0, 0), (2, 1), (1, 1), 1, False),     # 1x1 with stride: im2col
        (2, 6, 10, 8, 9, (3, 2), (1, 0), (2, 3), (2, 1), 3, True),     # asymmetric, 3 groups
        (4, 2, 6, 6, 3, (2, 2), (0, 1), (1, 2), (3, 1), 1, False),
    ]
    while len(out) < count:
        g = rng.choice([1, 1, 2, 3])
        k = (rng.randint(1, 4), rng.randint(1, 4))
        d = (rng.randint(1, 3), rng.randint(1, 3))
        p = (rng.randint(0, 3), rng.randint(0, 3))
        s = (rng.randint(1, 3), rng.randint(1, 3))
        ext = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)
        h = rng.randint(max(1, ext[0] - 2 * p[0]), max(1, ext[0] - 2 * p[0]) + 7)
        w = rng.randint(max(1, ext[1] - 2 * p[1]), max(1, ext[1] - 2 * p[1]) + 7)
        out.append((rng.randint(1, 3), g * rng.randint(1, 3), h, w, g * rng.randint(1, 3), k, p, s,
                    d, g, rng.random() < 0.7))
    return out


CASES = cases(20, seed=7)


def make(case, dtype, requires_grad=False):
    n, c, h, w, o, k, p, s, d, g, has_bias = case
    x = torch.randn(n, c, h, w, dtype=dtype, requires_grad=requires_grad)
    wt = torch.randn(o, c // g, *k, dtype=dtype, requires_grad=requires_grad)
    b = torch.randn(o, dtype=dtype, requires_grad=requires_grad) if has_bias else None
    return x, wt, b, dict(stride=s, pad=p, hole=d, group=g)


def torch_conv(x, w, b, stride, pad, hole, group):
    return F.conv2d(x, w, b, stride=stride, padding=pad, dilation=hole, groups=group)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.float64, 1e-11)])
def test_forward_matches_torch(case, dtype, tol):
    torch.manual_seed(0)
    x, w, b, kw = make(case, dtype)
    torch.testing.assert_close(conv2d_hole(x, w, b, **kw), torch_conv(x, w, b, **kw),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("case", CASES)
def test_backward_matches_torch(case):
    torch.manual_seed(1)
    x, w, b, kw = make(case, torch.float64, requires_grad=True)
    y = conv2d_hole(x, w, b, **kw)
    gy = torch.randn_like(y)
    got = torch.autograd.grad(y, [t for t in (x, w, b) if t is not None], gy)
    ref = torch.autograd.grad(torch_conv(x, w, b, **kw), [t for t in (x, w, b) if t is not None],
                              gy)
    for a, r in zip(got, ref):
        torch.testing.assert_close(a, r, rtol=1e-11, atol=1e-11)


# gradcheck costs two forwards per input element: tiny shapes, every code path (hole, groups,
# 1x1 shortcut, stride); the bigger cases are covered by test_backward_matches_torch.
GRAD_CASES = [
    (1, 2, 5, 5, 2, (3, 3), (2, 2), (1, 1), (2, 2), 1, True),
    (2, 4, 4, 3, 4, (1, 1), (0, 0), (1, 1), (1, 1), 2, True),
    (1, 3, 6, 5, 3, (2, 3), (1, 0), (2, 1), (1, 2), 3, False),
]


@pytest.mark.parametrize("case", GRAD_CASES)
def test_gradcheck(case):
    torch.manual_seed(2)
    x, w, b, kw = make(case, torch.float64, requires_grad=True)
    args = (x, w) if b is None else (x, w, b)
    assert torch.autograd.gradcheck(lambda *a: conv2d_hole(*a, **kw), args)


def test_only_some_gradients():
    x, w, b, kw = make(CASES[0], torch.float64, requires_grad=False)
    w.requires_grad_()
    y = conv2d_hole(x, w, b, **kw)
    (gw,) = torch.autograd.grad(y.sum(), [w])
    ref = torch.autograd.grad(torch_conv(x, w, b, **kw).sum(), [w])[0]
    torch.testing.assert_close(gw, ref)


def test_non_contiguous_inputs():
    torch.manual_seed(3)
    x = torch.randn(2, 9, 11, 6, dtype=torch.float64).permute(0, 1, 3, 2)  # (2, 9, 6, 11)
    w = torch.randn(3, 3, 9, 4, dtype=torch.float64).permute(2, 3, 0, 1)[:, ::2]  # (9, 2, 3, 3)
    w = w[:6]  # (6, 2, 3, 3): 6 outputs over group=... input channels 9 -> use group 1 slice
    x = x[:, :2]
    assert not x.is_contiguous() and not w.is_contiguous()
    torch.testing.assert_close(conv2d_hole(x, w, None, pad=2, hole=2),
                               F.conv2d(x, w, None, padding=2, dilation=2))


def test_empty_batch_forward_and_backward():
    x = torch.randn(0, 3, 9, 9, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    y = conv2d_hole(x, w, torch.zeros(4), pad=1)
    assert y.shape == (0, 4, 9, 9)
    gx, gw = torch.autograd.grad(y.sum(), [x, w])
    assert gx.shape == x.shape and gw.shape == w.shape and gw.abs().sum() == 0


@pytest.mark.parametrize("args,kwargs,match", [
    ((torch.randn(1, 4, 7, 7), torch.randn(6, 2, 3, 3)), dict(group=3),
     "input channels 4 are not divisible by group=3"),
    ((torch.randn(1, 4, 7, 7), torch.randn(5, 2, 3, 3)), dict(group=2),
     "num_output 5 is not divisible by group=2"),
    ((torch.randn(1, 4, 7, 7), torch.randn(6, 3, 3, 3)), dict(),
     "weight has 3 input channels per group"),
    ((torch.randn(1, 4, 7, 7), torch.randn(6, 4, 3, 3)), dict(hole=0), "hole must be >= 1"),
    ((torch.randn(1, 4, 7, 7), torch.randn(6, 4, 3, 3)), dict(stride=(1, 0)), "stride must be >= 1"),
    ((torch.randn(1, 4, 7, 7), torch.randn(6, 4, 3, 3)), dict(hole=4),
     "kernel extent 9 .* larger than the padded input height 7"),
    ((torch.randn(1, 4, 7, 7), torch.randn(6, 4, 3, 3)), dict(group=0), "group must be a positive"),
    ((torch.randn(1, 4, 7, 7), torch.randn(6, 4, 3, 3, dtype=torch.float64)), dict(),
     "x is Float but weight is Double"),
    ((torch.randn(1, 4, 7, 7), torch.randn(6, 4, 3, 3), torch.randn(5)), dict(),
     r"bias must have shape \(6\)"),
    ((torch.randn(4, 7, 7), torch.randn(6, 4, 3, 3)), dict(), "x must be 4-D"),
])
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv2d_hole(*args, **kwargs)


CHUNK_SCRIPT = r"""
import json, sys, torch, torch.nn.functional as F
from deeplab_caffe.ops import conv2d_hole
torch.manual_seed(0)
res = {}
# (N, C, H, W, O, k, pad, hole): 1 MB budget -> float64 columns of one image exceed it for the
# first case (row blocks) and fit several times for the second (image blocks).
for name, (n, c, h, w, o, k, p, d) in {"rows": (2, 16, 40, 40, 8, 3, 2, 2),
                                       "images": (7, 4, 12, 12, 5, 3, 12, 12)}.items():
    x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(o, c, k, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(o, dtype=torch.float64, requires_grad=True)
    y = conv2d_hole(x, wt, b, pad=p, hole=d)
    r = F.conv2d(x, wt, b, padding=p, dilation=d)
    gy = torch.randn_like(y)
    g1 = torch.autograd.grad(y, [x, wt, b], gy)
    g2 = torch.autograd.grad(r, [x, wt, b], gy)
    res[name] = [float((y - r).abs().max())] + [float((a - e).abs().max()) for a, e in zip(g1, g2)]
print(json.dumps(res))
"""


def test_column_chunking_matches_unchunked():
    env = dict(os.environ, DEEPLAB_CAFFE_COL_BUDGET_MB="1")
    out = subprocess.run([sys.executable, "-c", CHUNK_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    for name, errs in res.items():
        assert max(errs) < 1e-10, (name, errs)


def test_bad_budget_environment_is_reported():
    env = dict(os.environ, DEEPLAB_CAFFE_COL_BUDGET_MB="lots")
    code = ("import torch; from deeplab_caffe.ops import conv2d_hole\n"
            "conv2d_hole(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "DEEPLAB_CAFFE_COL_BUDGET_MB must be a positive integer" in \
        out.stderr
