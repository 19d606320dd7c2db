"""bench_crf --backward: the differentiable mean field's forward and backward (issue 17's
target: backward <= 2x forward on the CPU at 500x375x21)."""
import torch

from ..crf.pairwise import compat_tensor, kernel_norms
from ..ops.crf import Kernel, build_lattice
from . import crf as bench_crf
from .crf import ITERS, LABELS, PARAMS, features
from .timing import sync


def run_backward(img, U, device, repeats):
    """The differentiable mean field (crf/trainable.py) on the same inputs: its forward with
    autograd recording, then the backward of sum(Q * G) to the unary and both compatibilities,
    best of ``repeats`` each; the target is backward <= 2x forward."""
    from ..crf.trainable import meanfield_trainable
    pos, bi = features(img, device)
    unary = torch.from_numpy(U).t().contiguous().to(device)
    lats = [build_lattice(f) for f in (pos, bi)]
    g = torch.rand(unary.shape, generator=torch.Generator().manual_seed(0)).to(device)
    fwd = bwd = float("inf")
    for _ in range(repeats + 1):                     # the first run is a warm-up
        u = unary.clone().requires_grad_()
        compats = [compat_tensor(w, LABELS, device).requires_grad_()
                   for w in (PARAMS["pos_w"], PARAMS["bi_w"])]
        kernels = [Kernel(lat, *kernel_norms(lat, "NORMALIZE_AFTER"), c)
                   for lat, c in zip(lats, compats)]
        sync(device)
        t0 = bench_crf.clock()
        q = meanfield_trainable(u, kernels, ITERS)
        sync(device)
        t1 = bench_crf.clock()
        (q * g).sum().backward()
        sync(device)
        t2 = bench_crf.clock()
        fwd, bwd = min(fwd, t1 - t0), min(bwd, t2 - t1)
    return dict(forward_s=fwd, backward_s=bwd, ratio=bwd / fwd)
