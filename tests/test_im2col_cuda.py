"""The CUDA hole im2col / col2im kernels and the convolution built on them, against the CPU twins
(the reference), on every backend that runs the CUDA code: a real GPU ("cuda") and the
emulated-CUDA build on the CPU ("emu"; see the `backend` fixture in conftest.py).

im2col is a copy and col2im sums each pixel's taps in the same order in both twins, so both are
bit exact on every backend.  A whole convolution is bit exact where the GEMMs are the CPU's (emu);
on a GPU cuBLAS sums in its own order, so there it is compared with a tolerance."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import requires_cuda
from test_conv_hole import CASES, make
from test_im2col import GEOMS

CPU = torch.ops.deeplab_caffe

# DeepLab's geometries (N, C, H, W), kernel, pad, stride, hole, at real spatial sizes with reduced
# channels: LargeFOV fc6 (3x3 hole 12 on the 41x41 map of a 321 crop, 65x65 of a 513 image),
# conv1_1 / conv1_2 (3x3 pad 1), the 3x3 stride-2 pad-1 geometry of pool1-3 and DeepLab fc6
# (4x4 hole 4).
DEEPLAB_GEOMS = [
    pytest.param((1, 8, 41, 41), (3, 3), (12, 12), (1, 1), (12, 12), id="fc6_largefov_321"),
    pytest.param((1, 4, 65, 65), (3, 3), (12, 12), (1, 1), (12, 12), id="fc6_largefov_513"),
    pytest.param((1, 3, 513, 513), (3, 3), (1, 1), (1, 1), (1, 1), id="conv1_1_513"),
    pytest.param((1, 4, 321, 321), (3, 3), (1, 1), (1, 1), (1, 1), id="conv1_2_321"),
    pytest.param((2, 4, 321, 321), (3, 3), (1, 1), (2, 2), (1, 1), id="pool1_stride2_321"),
    pytest.param((1, 8, 81, 81), (3, 3), (1, 1), (2, 2), (1, 1), id="pool3_stride2_81"),
    pytest.param((1, 8, 41, 41), (4, 4), (6, 6), (1, 1), (4, 4), id="fc6_deeplab_4x4"),
]
ALL_GEOMS = [pytest.param(*g, id=f"random{i}") for i, g in enumerate(GEOMS)] + DEEPLAB_GEOMS


@pytest.fixture
def no_tf32():
    """cuBLAS TF32 off for one test, restored afterwards (it is process-wide)."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("shape,k,p,s,d", ALL_GEOMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_im2col_equals_cpu(backend, shape, k, p, s, d, dtype):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=dtype)
    got = backend.ops.im2col_hole(backend.to(x), k, p, s, d).cpu()
    assert torch.equal(got, CPU.im2col_hole(x, k, p, s, d))


@pytest.mark.parametrize("shape,k,p,s,d", ALL_GEOMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_col2im_equals_cpu_bitwise(backend, shape, k, p, s, d, dtype):
    torch.manual_seed(1)
    x = torch.randn(shape, dtype=dtype)
    cols = torch.randn_like(CPU.im2col_hole(x, k, p, s, d))
    ref = CPU.col2im_hole(cols, shape[2:], k, p, s, d)
    a = backend.ops.col2im_hole(backend.to(cols), shape[2:], k, p, s, d).cpu()
    b = backend.ops.col2im_hole(backend.to(cols), shape[2:], k, p, s, d).cpu()
    assert torch.equal(a, b)  # gather form: no atomics, same bits every run
    assert torch.equal(a, ref)


# kernel/pad/stride/hole are int64 in the op schemas; a pad or stride past 2^31 must not wrap in
# the kernels.  Output row 0 reads input row -2^32 (padding) and row 1 reads 2^33 - 2^32: both
# zeros, where 32-bit geometry would read the pixel.
def test_geometry_past_int32_does_not_wrap(backend):
    x = torch.ones(1, 1, 1, 1)
    args = ((1, 1), (2 ** 32, 0), (2 ** 33, 1), (1, 1))
    ref = CPU.im2col_hole(x, *args)
    assert torch.equal(ref, torch.zeros(1, 1, 2))
    assert torch.equal(backend.ops.im2col_hole(backend.to(x), *args).cpu(), ref)
    cols = torch.ones(1, 1, 2)
    assert torch.equal(backend.ops.col2im_hole(backend.to(cols), (1, 1), *args).cpu(),
                       CPU.col2im_hole(cols, (1, 1), *args))


def conv_forward_backward(ops, x, w, b, kw, gy):
    args = (kw["stride"], kw["pad"], kw["hole"], kw["group"])
    y = ops.conv2d_hole(x, w, b, *args)
    gx, gw, gb = ops.conv2d_hole_backward(gy, x, w, *args, [True, True, b is not None])
    return [y, gx, gw] + ([gb] if b is not None else [])


@pytest.mark.parametrize("case", CASES)
def test_conv_forward_backward_equals_cpu(backend, case, no_tf32):
    torch.manual_seed(0)
    x, w, b, kw = make(case, torch.float64)
    gy = torch.randn_like(CPU.conv2d_hole(x, w, b, kw["stride"], kw["pad"], kw["hole"],
                                          kw["group"]))
    ref = conv_forward_backward(CPU, x, w, b, kw, gy)
    got = conv_forward_backward(backend.ops, *map(backend.to, (x, w, b)), kw, backend.to(gy))
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        if backend.same_blas:
            assert torch.equal(g.cpu(), r)
        else:
            torch.testing.assert_close(g.cpu(), r, rtol=1e-10, atol=1e-10)


# DeepLab's convolutions under a 1 MB column budget, so both twins cut the columns into blocks of
# output rows (the same blocks: the budget is the same).  The blocks of a layer whose kernel
# extent exceeds its stride overlap in input rows, so col2im adds a block's tap sums into a
# gradient that already holds the previous block's: the twins must add in the same order.  The
# budget is read once per process, hence the subprocess.
CONV_BLOCKS_SCRIPT = r"""
import json, sys, torch
import deeplab_caffe as dc
backend = sys.argv[1]
if backend == "emu":
    assert dc.emu.available(), dc.emu.reason()
ops, dev = (dc.emu.ops, "cpu") if backend == "emu" else (torch.ops.deeplab_caffe, "cuda")
torch.backends.cuda.matmul.allow_tf32 = False
cpu = torch.ops.deeplab_caffe
torch.manual_seed(0)
res = {}
# name: (N, C, H, W, O, kernel, pad, stride, hole)
for name, (n, c, h, w, o, k, p, s, d) in json.loads(sys.argv[2]).items():
    x = torch.randn(n, c, h, w)
    wt = torch.randn(o, c, k, k) * 0.1
    b = torch.randn(o)
    args = ([s, s], [p, p], [d, d], 1)
    y = cpu.conv2d_hole(x, wt, b, *args)
    gy = torch.randn_like(y)
    ref = [y, *cpu.conv2d_hole_backward(gy, x, wt, *args, [True, True, True])]
    xs, ws, bs, gys = (t.to(dev) for t in (x, wt, b, gy))
    got = [ops.conv2d_hole(xs, ws, bs, *args), *ops.conv2d_hole_backward(gys, xs, ws, *args,
                                                                         [True, True, True])]
    res[name] = [[bool(torch.equal(g.cpu(), r)), float((g.cpu() - r).abs().max())]
                 for g, r in zip(got, ref)]
print(json.dumps(res))
"""

CONV_BLOCK_CASES = {
    "conv1_2_321": (1, 16, 321, 321, 16, 3, 1, 1, 1),
    "fc6_largefov_41": (1, 64, 41, 41, 16, 3, 12, 1, 12),
    "pool_strided_161": (1, 16, 161, 161, 8, 3, 1, 2, 1),
}


@pytest.fixture(scope="module")
def conv_block_results():
    cache = {}

    def run(backend_name):
        if backend_name not in cache:
            env = dict(os.environ, DEEPLAB_CAFFE_COL_BUDGET_MB="1")
            out = subprocess.run([sys.executable, "-c", CONV_BLOCKS_SCRIPT, backend_name,
                                  json.dumps(CONV_BLOCK_CASES)], env=env, capture_output=True,
                                 text=True, timeout=600)
            assert out.returncode == 0, out.stderr
            cache[backend_name] = json.loads(out.stdout.strip().splitlines()[-1])
        return cache[backend_name]
    return run


@pytest.mark.parametrize("case", sorted(CONV_BLOCK_CASES))
def test_conv_row_blocks_equal_cpu(backend, case, conv_block_results):
    results = conv_block_results(backend.name)[case]
    for what, (equal, diff) in zip(["y", "grad_x", "grad_w", "grad_b"], results):
        if backend.same_blas:
            assert equal, (case, what, diff)
        else:
            assert diff < 1e-3, (case, what, diff)


@requires_cuda
def test_cuda_conv_large_chunked_float32(no_tf32):
    # Bigger than the default 32 MB column budget: exercises row blocks on the GPU.
    from deeplab_caffe.ops import conv2d_hole
    torch.manual_seed(1)
    x = torch.randn(2, 64, 129, 129, device="cuda")
    w = torch.randn(64, 64, 3, 3, device="cuda") * 0.05
    ref = torch.nn.functional.conv2d(x, w, padding=2, dilation=2)
    torch.testing.assert_close(conv2d_hole(x, w, pad=2, hole=2), ref, rtol=1e-4, atol=1e-4)


@requires_cuda
def test_cuda_device_mix_is_a_value_error():
    from deeplab_caffe.ops import conv2d_hole
    with pytest.raises(ValueError, match="x is on cuda.* but weight is on cpu"):
        conv2d_hole(torch.randn(1, 2, 5, 5, device="cuda"), torch.randn(2, 2, 3, 3))
