"""Gradients through the dense CRF: the lattice filter's backward (its adjoint) and the
differentiable mean field, on the CPU and on the backends that run the CUDA kernels.

References: the filter as a dense P x P matrix F (the op applied to the identity's columns), and
the same mean field written in float64 with F (or the exact Gaussians) as plain matrices,
differentiated by autograd in float64."""
import contextlib
import warnings
from unittest import mock

import pytest
import torch

from deeplab_caffe.crf import MeanFieldCRF, dense_crf, meanfield_logits
from deeplab_caffe.crf.pairwise import kernel_norms
from deeplab_caffe.ops import crf as crf_ops
from deeplab_caffe.ops.crf import Kernel, build_lattice, lattice_filter, meanfield

from test_crf_lattice import grid_features
from test_crf_meanfield import scene

BACKENDS = ["cpu"] + [p for p in __import__("conftest").BACKENDS]


@contextlib.contextmanager
def on(backend):
    if backend == "cpu":
        yield
        return
    from conftest import Backend
    with mock.patch.object(crf_ops, "_ops", Backend(backend).ops):
        yield


def dense(lattice, reverse=False):
    """The filter as a float64 matrix: column j is the filter of the j-th unit vector."""
    P = lattice.num_points
    return lattice_filter(torch.eye(P), lattice, reverse=reverse).double()


def small_lattice(d, P=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return build_lattice((torch.randn(P, d, generator=g) * 1.5).float())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d", [2, 5])
def test_filter_backward_is_the_dense_transpose(backend, d):
    lat = small_lattice(d)
    F = dense(lat)
    g = torch.Generator().manual_seed(d)
    x = torch.rand(lat.num_points, 3, generator=g).requires_grad_()
    y = torch.randn(lat.num_points, 3, generator=g)
    with on(backend):
        for reverse, M in ((False, F), (True, dense(lat, True))):
            x.grad = None
            (lattice_filter(x, lat, reverse=reverse) * y).sum().backward()
            torch.testing.assert_close(x.grad.double(), M.t() @ y.double(), atol=2e-6, rtol=1e-5)
    assert not torch.allclose(F, F.t(), atol=1e-3)  # not symmetric: the transpose is needed


@pytest.mark.parametrize("backend", BACKENDS)
def test_filter_gradcheck(backend):
    lat = small_lattice(3, P=25)
    x = torch.rand(25, 2, generator=torch.Generator().manual_seed(1)).requires_grad_()
    with on(backend), warnings.catch_warnings():
        # float32 ops: the filter is linear, so central differences are exact but for rounding
        warnings.filterwarnings("ignore", "Input #", UserWarning)
        assert torch.autograd.gradcheck(lambda v: lattice_filter(v, lat), (x,), eps=1e-2,
                                        atol=1e-4, rtol=1e-3)


def _case(L=3, h=6, w=7, seed=0):
    img, scores = scene(1, h, w, L, seed)
    hwc = img[0].permute(1, 2, 0)
    feats = [grid_features(h, w, 2.0), grid_features(h, w, 3.0, hwc, 20.0)]
    unary = -torch.log_softmax(scores[0].reshape(L, -1).t(), 1).contiguous()
    return unary, [build_lattice(f) for f in feats]


def _dense_meanfield(unary, mats, befores, afters, compats, iters):
    """float64 reference of meanfield_logits with the filters as matrices."""
    a = -unary
    q = torch.softmax(a, 1)
    for _ in range(iters):
        a = -unary
        for F, nb, na, c in zip(mats, befores, afters, compats):
            m = na[:, None] * (F @ (nb[:, None] * q))
            a = a - (m * c if c.dim() == 1 else m @ c.t())
        q = torch.softmax(a, 1)
    return a


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("normalization", ["NO_NORMALIZATION", "NORMALIZE_AFTER",
                                           "NORMALIZE_SYMMETRIC", "NORMALIZE_BEFORE"])
def test_meanfield_gradient_matches_float64_reference(backend, normalization):
    unary, lats = _case()
    P, L = unary.shape
    g = torch.Generator().manual_seed(3)
    compats = [torch.full((L,), -3.0), -torch.eye(L) * 4 + 0.3 * torch.rand(L, L, generator=g)]
    w = torch.randn(P, L, generator=g, dtype=torch.float64)
    norms = [kernel_norms(lat, normalization) for lat in lats]
    one = torch.ones(P, dtype=torch.float64)
    befores = [n[0].double() if n[0].numel() else one for n in norms]
    afters = [n[1].double() if n[1].numel() else one for n in norms]
    u64 = unary.double().requires_grad_()
    c64 = [c.double().requires_grad_() for c in compats]
    ref = _dense_meanfield(u64, [dense(lat) for lat in lats], befores, afters, c64, 4)
    (ref * w).sum().backward()
    u32 = unary.clone().requires_grad_()
    c32 = [c.clone().requires_grad_() for c in compats]
    with on(backend):
        for checkpoint in (False, True):
            for t in [u32] + c32:
                t.grad = None
            kernels = [Kernel(lat, n[0], n[1], c) for lat, n, c in zip(lats, norms, c32)]
            a = meanfield_logits(u32, kernels, 4, checkpoint=checkpoint)
            torch.testing.assert_close(a.double(), ref.detach(), atol=1e-4, rtol=1e-4)
            (a * w.float()).sum().backward()
            for ours, theirs in zip([u32] + c32, [u64] + c64):
                torch.testing.assert_close(ours.grad.double(), theirs.grad, atol=2e-4,
                                           rtol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_meanfield_gradcheck(backend):
    unary, lats = _case(L=3, h=5, w=5, seed=2)
    empty = torch.empty(0)
    compat = (-2.0 * torch.eye(3)).requires_grad_()
    u = unary.clone().requires_grad_()

    def f(u, c):
        ks = [Kernel(lat, empty, kernel_norms(lat, "NORMALIZE_AFTER")[1], c) for lat in lats]
        return torch.softmax(meanfield_logits(u, ks, 3), 1)
    with on(backend), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Input #", UserWarning)  # float32: the ops' only type
        assert torch.autograd.gradcheck(f, (u, compat), eps=2e-3, atol=2e-3, rtol=2e-2)


def test_trainable_forward_matches_the_fused_op():
    unary, lats = _case(L=4, h=9, w=8)
    kernels = [Kernel(lat, *kernel_norms(lat, "NORMALIZE_AFTER"), torch.full((4,), -w))
               for lat, w in zip(lats, (3.0, 5.0))]
    fused = meanfield(unary, kernels, 5)
    ours = torch.softmax(meanfield_logits(unary.requires_grad_(), kernels, 5), 1)
    torch.testing.assert_close(ours, fused, atol=1e-5, rtol=0)


def test_dense_crf_is_differentiable_when_scores_require_grad():
    img, scores = scene(2, 10, 12, 4, 5)
    args = dict(pos_w=3, pos_xy_std=3, bi_w=5, bi_xy_std=10, bi_rgb_std=13, max_iter=5)
    plain = dense_crf(scores, img, **args)
    x = scores.clone().requires_grad_()
    q = dense_crf(x, img, **args)
    torch.testing.assert_close(q.detach(), plain, atol=1e-5, rtol=0)
    q[:, 1].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_one_sgd_step_on_the_crf_weights_lowers_the_loss():
    img, scores = scene(1, 16, 16, 3, 7)
    truth = (img[0].mean(0) > img[0].mean()).long() + (img[0, 0] > 200).long()
    crf = MeanFieldCRF(3, num_iterations=5, theta_alpha=10, theta_beta=20, theta_gamma=3,
                       spatial_weight=1.0, bilateral_weight=1.0)
    opt = torch.optim.SGD(crf.parameters(), lr=1e-3)

    def loss():
        return torch.nn.functional.cross_entropy(crf(scores, img), truth[None])
    before = loss()
    opt.zero_grad()
    before.backward()
    assert all(float(p.grad.abs().sum()) > 0 for p in crf.parameters())
    opt.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item() - 1e-4, (before.item(), after.item())


# ---- float64: the filter's double-precision twin (same lattice, same steps) ------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_filter_is_the_float32_filter_in_double(backend):
    lat = small_lattice(5, P=60, seed=4)
    x = torch.rand(60, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with on(backend):
        for reverse in (False, True):
            f64 = lattice_filter(x, lat, reverse=reverse)
            f32 = lattice_filter(x.float(), lat, reverse=reverse)
            assert f64.dtype == torch.float64
            torch.testing.assert_close(f64, f32.double(), atol=1e-6, rtol=1e-5)
    if backend != "cpu":
        torch.testing.assert_close(f64, lattice_filter(x, lat, reverse=True), atol=1e-12,
                                   rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_filter_gradcheck_float64(backend):
    lat = small_lattice(3, P=25)
    x = torch.rand(25, 2, generator=torch.Generator().manual_seed(1),
                   dtype=torch.float64).requires_grad_()
    with on(backend):
        assert torch.autograd.gradcheck(lambda v: lattice_filter(v, lat), (x,))
        assert torch.autograd.gradgradcheck(lambda v: lattice_filter(v, lat, reverse=True), (x,))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("normalization", ["NORMALIZE_AFTER", "NORMALIZE_SYMMETRIC"])
def test_meanfield_gradcheck_float64(backend, normalization):
    unary, lats = _case(L=3, h=5, w=5, seed=2)
    u = unary.double().requires_grad_()
    diag = torch.full((3,), -3.0, dtype=torch.float64, requires_grad=True)
    full = (-2.0 * torch.eye(3, dtype=torch.float64) + 0.1).requires_grad_()
    norms = [kernel_norms(lat, normalization) for lat in lats]

    def f(u, diag, full):
        ks = [Kernel(lat, n[0].double(), n[1].double(), c)
              for lat, n, c in zip(lats, norms, (diag, full))]
        return torch.softmax(meanfield_logits(u, ks, 3), 1)
    with on(backend):
        assert torch.autograd.gradcheck(f, (u, diag, full))
