"""The CPU kernels really run on torch's intra-op threads, and their results do not depend on how
many there are (the CRF bit for bit; the convolution up to the GEMM's summation order)."""
import json
import os
import subprocess
import sys

import torch

import deeplab_caffe


def test_extension_is_built_with_torchs_openmp():
    # Without -fopenmp, at::parallel_for (a header template) silently runs every loop on the
    # calling thread: the CRF was 1.7x slower on 2 cores before this was caught.
    if "ATen parallel backend: OpenMP" in torch.__config__.parallel_info():
        assert deeplab_caffe.build_info()["openmp"] is True


THREAD_SCRIPT = r"""
import json, sys
import numpy as np
import torch
from deeplab_caffe.ops import col2im_hole, conv2d_hole, im2col_hole
from deeplab_caffe.ops.crf import Kernel, build_lattice, meanfield, _ops
from deeplab_caffe.crf.dense_crf import compat_tensor, kernel_norms
from deeplab_caffe.data.synthetic import synthetic_photo

h, w, L = 130, 150, 21          # 19500 points: the CRF splat's two-half path (>= 16384)
img = synthetic_photo(w, h, 3, num_shapes=12, min_size=10, max_frac=3, blur=1.0,
                      noise_dtype=np.float32)
ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                        torch.arange(w, dtype=torch.float32), indexing="ij")
xy = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)
rgb = torch.from_numpy(img.reshape(-1, 3).astype(np.float32))
pos = xy / 3.0
bi = torch.cat([xy / 60.0, rgb / 5.0], 1).contiguous()
gen = torch.Generator().manual_seed(0)
unary = -torch.log_softmax(torch.randn(h * w, L, generator=gen) * 2, 1)
vals = torch.rand(h * w, 5, generator=gen)
x = torch.randn(2, 6, 37, 41, generator=gen, requires_grad=True)
wt = torch.randn(8, 6, 3, 3, generator=gen, requires_grad=True)
cols = torch.randn(2, 6 * 9, 37 * 41, generator=gen)

out = {}
for threads in (1, 2, 3):
    torch.set_num_threads(threads)
    res = {}
    lats = [build_lattice(pos), build_lattice(bi)]
    for i, lat in enumerate(lats):
        for name, t in zip(lat._fields, lat):
            res[f"lat{i}.{name}"] = t
        res[f"filter{i}"] = _ops.permutohedral_filter(vals, *lat, False)
    ks = [Kernel(l, *kernel_norms(l, n), compat_tensor(c, L, torch.device("cpu")))
          for l, n, c in zip(lats, ("NORMALIZE_AFTER", "NORMALIZE_SYMMETRIC"), (3.0, 4.0))]
    res["meanfield"] = meanfield(unary, ks, 5)
    res["im2col"] = im2col_hole(x.detach(), 3, 2, 1, 2)
    res["col2im"] = col2im_hole(cols, (37, 41), 3, 2, 1, 2)
    y = conv2d_hole(x, wt, None, 1, 2, 2)
    gx, gw = torch.autograd.grad(y.square().sum(), (x, wt))
    res["conv"], res["conv.dx"], res["conv.dw"] = y.detach(), gx, gw
    out[threads] = res

report = {}
for threads in (2, 3):
    for key, ref in out[1].items():
        got = out[threads][key]
        exact = bool(torch.equal(ref, got))
        err = float((ref.double() - got.double()).abs().max()) if ref.numel() else 0.0
        scale = float(ref.double().abs().max()) if ref.numel() else 0.0
        report[f"{threads}:{key}"] = [exact, err, scale]
print(json.dumps(report))
"""


def test_results_do_not_depend_on_the_thread_count():
    # fixed: the CRF uses every thread it is given, however busy the machine is (adaptive, the
    # default, may run the 2- and 3-thread cases on one).
    out = subprocess.run([sys.executable, "-c", THREAD_SCRIPT], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, DEEPLAB_CAFFE_CRF_THREADS="fixed"))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report) == 2 * 18
    for key, (exact, err, scale) in report.items():
        if key.split(":")[1].startswith("conv"):
            # The GEMM library may split its sums differently with more threads.
            assert err <= 1e-5 * max(scale, 1.0), (key, err, scale)
        else:
            assert exact, (key, err)
