"""bench_crf --backward: the differentiable mean field's backward against its forward (issue 17's
target: backward <= 2x forward on the CPU at 500x375x21).

The forward the target compares against is dense_crf's inference path, the fused mean-field op
(``forward_s``; the lattices are built beforehand for every side); the differentiable forward
(crf/trainable.py, recording what its backward needs) is timed as well.  The three run in turn,
``repeats`` rounds after a warm-up, and each reports the median."""
import statistics

import torch

from ..crf.pairwise import compat_tensor, kernel_norms
from ..ops.crf import Kernel, build_lattice, meanfield
from . import crf as bench_crf
from .crf import ITERS, LABELS, PARAMS, features
from .timing import sync


def _timed(fn, device):
    sync(device)
    t0 = bench_crf.clock()
    out = fn()
    sync(device)
    return bench_crf.clock() - t0, out


def run_backward(img, U, device, repeats):
    """Per round: the fused forward, the differentiable forward (autograd recording), then the
    backward of sum(Q * G) to the unary and both compatibilities.  Medians of ``repeats``
    rounds; ratio = backward / fused forward."""
    from ..crf.trainable import meanfield_trainable
    pos, bi = features(img, device)
    unary = torch.from_numpy(U).t().contiguous().to(device)
    lats = [build_lattice(f) for f in (pos, bi)]
    norms = [kernel_norms(lat, "NORMALIZE_AFTER") for lat in lats]
    g = torch.rand(unary.shape, generator=torch.Generator().manual_seed(0)).to(device)
    fused, fwd, bwd = [], [], []
    for r in range(repeats + 1):                     # the first round is a warm-up
        compats = [compat_tensor(w, LABELS, device).requires_grad_()
                   for w in (PARAMS["pos_w"], PARAMS["bi_w"])]
        kernels = [Kernel(lat, *n, c) for lat, n, c in zip(lats, norms, compats)]
        plain = [k._replace(compat=k.compat.detach()) for k in kernels]
        t_fused, _ = _timed(lambda: meanfield(unary, plain, ITERS), device)
        u = unary.clone().requires_grad_()
        t_fwd, q = _timed(lambda: meanfield_trainable(u, kernels, ITERS), device)
        t_bwd, _ = _timed(lambda: (q * g).sum().backward(), device)
        if r:
            fused.append(t_fused)
            fwd.append(t_fwd)
            bwd.append(t_bwd)
    med = statistics.median
    return dict(forward_s=med(fused), differentiable_forward_s=med(fwd), backward_s=med(bwd),
                ratio=med(bwd) / med(fused), ratio_vs_differentiable=med(bwd) / med(fwd),
                repeats=repeats)


def describe(w, h, grad):
    """The report's line for run_backward's result."""
    return (f"differentiable mean field {w}x{h}: backward {1e3 * grad['backward_s']:.1f} ms = "
            f"{grad['ratio']:.2f}x the fused forward ({1e3 * grad['forward_s']:.1f} ms; target "
            f"<= 2x: {'met' if grad['ratio'] <= 2 else 'MISSED'}), "
            f"{grad['ratio_vs_differentiable']:.2f}x the differentiable forward "
            f"({1e3 * grad['differentiable_forward_s']:.1f} ms); medians of {grad['repeats']}")
