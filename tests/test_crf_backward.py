"""The mean field's backward op (dense_crf_meanfield_backward, crf/trainable.py's
MeanFieldFunction): against autograd over the iterations written with the lattice filter (whose
backward is its adjoint), its CUDA twin (emulated or real) against the CPU bit for bit, the same
bits on any thread count, and checkpointing."""
import pytest
import torch

from deeplab_caffe.crf import trainable
from deeplab_caffe.crf.pairwise import kernel_norms
from deeplab_caffe.errors import CRFError
from deeplab_caffe.ops import crf as crf_ops
from deeplab_caffe.ops.crf import Kernel, build_lattice, lattice_filter

from test_crf_lattice import grid_features
from test_crf_meanfield import scene

NORMALIZATIONS = ["NO_NORMALIZATION", "NORMALIZE_AFTER", "NORMALIZE_SYMMETRIC",
                  "NORMALIZE_BEFORE"]


def _case(L, h, w, seed, normalization="NORMALIZE_AFTER"):
    img, scores = scene(1, h, w, L, seed)
    hwc = img[0].permute(1, 2, 0)
    lats = [build_lattice(grid_features(h, w, 2.0)),
            build_lattice(grid_features(h, w, 3.0, hwc, 20.0))]
    unary = -torch.log_softmax(scores[0].reshape(L, -1).t(), 1).contiguous()
    g = torch.Generator().manual_seed(seed + 1)
    compats = [torch.full((L,), -3.0), -4 * torch.eye(L) + 0.3 * torch.rand(L, L, generator=g)]
    kernels = [Kernel(lat, *kernel_norms(lat, normalization), c) for lat, c in zip(lats, compats)]
    return unary, kernels, torch.randn(unary.shape, generator=g)


def _autograd_reference(unary, kernels, iters, q_init=None, logits_init=None):
    """meanfield_logits as plain autograd over the iterations (the filter's own backward)."""
    a = -unary if logits_init is None else logits_init
    q = q_init if q_init is not None else torch.softmax(a, 1)
    for _ in range(iters):
        a = -unary
        for k in kernels:
            v = q * k.norm_before[:, None] if k.norm_before.numel() else q
            m = lattice_filter(v.contiguous(), k.lattice)
            m = m * k.norm_after[:, None] if k.norm_after.numel() else m
            a = a - (m * k.compat if k.compat.dim() == 1 else m @ k.compat.t())
        q = torch.softmax(a, 1)
    return a


def _grads(fn, unary, kernels, w, init=None):
    """fn's logits' gradient of sum(a * w) w.r.t. unary, the init tensor and each compat."""
    u = unary.clone().requires_grad_()
    cs = [k.compat.clone().requires_grad_() for k in kernels]
    ks = [k._replace(compat=c) for k, c in zip(kernels, cs)]
    x = None if init is None else init[1].clone().requires_grad_()
    kw = {} if init is None else {init[0]: x}
    a = fn(u, ks, 5, **kw)
    (a * w).sum().backward()
    return a.detach(), [u.grad] + ([] if x is None else [x.grad]) + [c.grad for c in cs]


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("init", [None, "q_init", "logits_init"])
def test_matches_autograd_over_the_iterations(normalization, init):
    unary, kernels, w = _case(3, 9, 11, 4, normalization)
    start = None
    if init is not None:
        x = torch.randn(unary.shape, generator=torch.Generator().manual_seed(9))
        start = (init, torch.softmax(x, 1) if init == "q_init" else x)
    a_ref, ref = _grads(_autograd_reference, unary, kernels, w, start)
    for checkpoint in (False, True):
        def ours(u, ks, n, **kw):
            return trainable.meanfield_logits(u, ks, n, checkpoint=checkpoint, **kw)
        a, got = _grads(ours, unary, kernels, w, start)
        torch.testing.assert_close(a, a_ref, atol=2e-5, rtol=1e-5)
        for x, y in zip(got, ref):
            torch.testing.assert_close(x, y, atol=3e-5, rtol=1e-4)


def _history(unary, kernels, iters):
    q = torch.softmax(-unary, 1)
    return trainable._history(q, unary, kernels, iters)


def test_op_matches_the_filter_steps():
    """The fused op and the same maths written with lattice_filter (the path of the backends
    without the op), from the same Q history; both kernel forms and normalisations."""
    for normalization in NORMALIZATIONS:
        unary, kernels, g = _case(5, 14, 13, 2, normalization)
        qs = _history(unary, kernels, 4)
        got = crf_ops.meanfield_backward(g, qs, kernels)
        want = trainable._backward_steps(g, qs, kernels)
        for x, y in zip(got[:2] + tuple(got[2]), want[:2] + tuple(want[2])):
            torch.testing.assert_close(x, y, atol=2e-5, rtol=1e-5)


def test_op_same_bits_on_any_thread_count():
    unary, kernels, g = _case(4, 40, 37, 3)                 # 1480 points: three sum blocks
    qs = _history(unary, kernels, 3)
    before = torch.get_num_threads()
    outs = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            q0, gu, gc = crf_ops.meanfield_backward(g, qs, kernels)
            outs.append([q0, gu, gc[0]])                     # the matrix's goes through BLAS
    finally:
        torch.set_num_threads(before)
    for other in outs[1:]:
        for x, y in zip(outs[0], other):
            assert torch.equal(x, y)


def test_cuda_twin_same_bits(backend):
    """The CUDA kernels (a GPU or the emulated build) against the CPU op: the same bits for
    dL/dQ_0, dL/dunary and the diagonal compatibility's gradient; the matrix's goes through the
    backend's GEMM (the same bits where that is the CPU's)."""
    unary, kernels, g = _case(5, 30, 23, 6, "NORMALIZE_SYMMETRIC")
    qs = _history(unary, kernels, 3)
    cpu = crf_ops.meanfield_backward(g, qs, kernels)
    dev = [k._replace(lattice=type(k.lattice)(*map(backend.to, k.lattice)),
                      norm_before=backend.to(k.norm_before), norm_after=backend.to(k.norm_after),
                      compat=backend.to(k.compat)) for k in kernels]
    op = backend.ops.dense_crf_meanfield_backward
    q0, gu, gc = op(backend.to(g), [backend.to(q) for q in qs],
                    *[[getattr(k.lattice, f) for k in dev] for f in crf_ops.Lattice._fields],
                    [k.norm_before for k in dev], [k.norm_after for k in dev],
                    [k.compat for k in dev])
    assert torch.equal(q0.cpu(), cpu[0]) and torch.equal(gu.cpu(), cpu[1])
    assert torch.equal(gc[0].cpu(), cpu[2][0])
    if backend.same_blas:
        assert torch.equal(gc[1].cpu(), cpu[2][1])
    else:
        torch.testing.assert_close(gc[1].cpu(), cpu[2][1], atol=1e-5, rtol=1e-5)


def test_bad_history_is_a_clear_error():
    unary, kernels, g = _case(3, 5, 6, 1)
    with pytest.raises(CRFError, match="q_history"):
        crf_ops.meanfield_backward(g, [], kernels)
    with pytest.raises(CRFError, match=r"q_history\[0\] must be float32"):
        crf_ops.meanfield_backward(g, [unary.double()], kernels)


def test_checkpoint_keeps_fewer_tensors():
    """checkpoint=True saves about sqrt(T) of the T Q tensors."""
    unary, kernels, _ = _case(3, 6, 7, 0)
    for checkpoint, saved in ((False, 1 + 9), (True, 1 + 3)):
        a = trainable.meanfield_logits(unary.clone().requires_grad_(), kernels, 9,
                                       checkpoint=checkpoint)
        assert len(a.grad_fn.saved_tensors) == saved


@pytest.mark.parametrize("iters", [1, 2, 3, 4])
def test_checkpoint_gives_the_same_gradient(iters):
    unary, kernels, w = _case(3, 7, 6, 5)

    def run(checkpoint):
        def fn(u, ks, n):
            return trainable.meanfield_logits(u, ks, iters, checkpoint=checkpoint)
        return _grads(fn, unary, kernels, w)[1]
    for x, y in zip(run(False), run(True)):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)
