"""Mean-field dense CRF: against an exact O(P^2) mean-field, batched == one by one, data_dim,
compatibility forms, errors, the CUDA fused update's maths on the host (CUDA == CPU on a device:
test_crf_cuda.py)."""
import pytest
import torch

import deeplab_caffe  # noqa: F401
from deeplab_caffe.crf import dense_crf
from deeplab_caffe.crf.dense_crf import kernel_norms
from deeplab_caffe.errors import CRFError
from deeplab_caffe.ops.crf import Kernel, build_lattice, meanfield

from crf_reference import exact_meanfield, gaussian_matrix
from test_crf_lattice import grid_features, smooth_image


def scene(n, h, w, L, seed):
    """Images (n, 3, h, w) float and noisy scores (n, L, h, w) that roughly follow the image."""
    imgs, scores = [], []
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        img = smooth_image(h, w, seed * 10 + i)                     # (h, w, 3)
        proj = torch.randn(3, L, generator=g)
        s = (img / 64.0) @ proj + 1.5 * torch.randn(h, w, L, generator=g)
        imgs.append(img.permute(2, 0, 1))
        scores.append(s.permute(2, 0, 1))
    return torch.stack(imgs).contiguous(), torch.stack(scores).float().contiguous()


def test_against_exact_meanfield():
    h, w, L = 24, 28, 4
    img, scores = scene(1, h, w, L, 0)
    q = dense_crf(scores, img, pos_w=3, pos_xy_std=3, bi_w=5, bi_xy_std=10, bi_rgb_std=13,
                  max_iter=10)
    unary = -torch.log_softmax(scores[0].reshape(L, -1).t().double(), 1)
    hwc = img[0].permute(1, 2, 0)
    Ks = gaussian_matrix(grid_features(h, w, 3.0))
    Kb = gaussian_matrix(grid_features(h, w, 10.0, hwc, 13.0))
    exact = exact_meanfield(unary, [(Ks, 3.0), (Kb, 5.0)], 10)
    ours = q[0].reshape(L, -1).t().double()
    agree = float((ours.argmax(1) == exact.argmax(1)).double().mean())
    changed = float((exact.argmax(1) != unary.argmin(1)).double().mean())
    assert agree >= 0.95, agree
    assert changed > 0.02          # the CRF did something the comparison can see
    torch.testing.assert_close(ours.sum(1), torch.ones(h * w, dtype=torch.float64), atol=1e-5,
                               rtol=0)


def test_batched_equals_one_by_one_with_data_dim():
    img, scores = scene(3, 20, 26, 5, 1)
    data_dim = torch.tensor([[20, 26], [13, 17], [20, 9]]).view(3, 1, 1, 2)
    args = dict(pos_w=3, pos_xy_std=3, bi_w=4, bi_xy_std=9, bi_rgb_std=5, max_iter=5)
    q = dense_crf(scores, img, data_dim=data_dim, **args)
    for n, (h, w) in enumerate(data_dim.view(3, 2).tolist()):
        one = dense_crf(scores[n, :, :h, :w].contiguous(), img[n, :, :h, :w].contiguous(), **args)
        assert torch.equal(q[n, :, :h, :w], one)
        assert float(q[n].abs().sum()) == pytest.approx(float(one.sum()), rel=1e-6)  # zero outside


def test_zero_iterations_is_softmax_and_probs_input():
    _, scores = scene(1, 8, 9, 3, 2)
    q0 = dense_crf(scores, None, bi_w=[], bi_xy_std=[], bi_rgb_std=[], max_iter=0)
    torch.testing.assert_close(q0, torch.softmax(scores, 1))
    img, _ = scene(1, 8, 9, 3, 2)
    a = dense_crf(scores, img, max_iter=3)
    b = dense_crf(torch.softmax(scores, 1), img, max_iter=3, input_type="probs")
    torch.testing.assert_close(a, b, atol=2e-5, rtol=0)


def test_compat_forms_agree():
    """Potts(w) == Diagonal(-w) == Matrix(w (1 - I)) for the marginals (densecrf's identities)."""
    h, w, L = 15, 17, 4
    img, scores = scene(1, h, w, L, 3)
    unary = -torch.log_softmax(scores[0].reshape(L, -1).t(), 1).contiguous()
    lat = build_lattice(grid_features(h, w, 4.0, img[0].permute(1, 2, 0), 10.0))
    before, after = kernel_norms(lat, "NORMALIZE_AFTER")
    potts = meanfield(unary, [Kernel(lat, before, after, torch.full((L,), -4.0))], 5)
    mat = 4.0 * (1 - torch.eye(L))
    full = meanfield(unary, [Kernel(lat, before, after, mat.contiguous())], 5)
    torch.testing.assert_close(potts, full, atol=3e-6, rtol=0)


def test_q_init_continues_iterations():
    h, w, L = 12, 14, 3
    img, scores = scene(1, h, w, L, 4)
    unary = -torch.log_softmax(scores[0].reshape(L, -1).t(), 1).contiguous()
    lat = build_lattice(grid_features(h, w, 3.0))
    ks = [Kernel(lat, *kernel_norms(lat, 2), torch.full((L,), -3.0))]
    q5 = meanfield(unary, ks, 5)
    q2 = meanfield(unary, ks, 2)
    assert torch.equal(meanfield(unary, ks, 3, q2), q5)


@pytest.mark.parametrize("kwargs,match", [
    (dict(bi_xy_std=0), "bi_xy_std"),
    (dict(pos_xy_std=-1), "pos_xy_std"),
    (dict(bi_rgb_std=float("nan")), "bi_rgb_std"),
    (dict(pos_w=[1, 2]), "pos_w and pos_xy_std"),
    (dict(max_iter=-1), "max_iter"),
    (dict(normalization="SOMETIMES"), "normalization"),
    (dict(data_dim=torch.tensor([[5, 99]])), "data_dim"),
])
def test_parameter_errors(kwargs, match):
    img, scores = scene(1, 6, 7, 3, 5)
    with pytest.raises(CRFError, match=match):
        dense_crf(scores, img, **kwargs)


def test_input_errors():
    img, scores = scene(1, 6, 7, 3, 6)
    with pytest.raises(CRFError, match="float32"):
        dense_crf(scores.double(), img)
    with pytest.raises(CRFError, match="at least 2 labels"):
        dense_crf(scores[:, :1].contiguous(), img)
    bad = scores.clone()
    bad[0, 1, 2, 3] = float("inf")
    with pytest.raises(CRFError, match="non-finite"):
        dense_crf(bad, img)
    with pytest.raises(CRFError, match="image must be"):
        dense_crf(scores, img[:, :, :5])
    with pytest.raises(CRFError, match="image is required"):
        dense_crf(scores, None)
    nan_img = img.clone()
    nan_img[0, 0, 0, 0] = float("nan")
    with pytest.raises(CRFError, match="image contains non-finite"):
        dense_crf(scores, nan_img)
    unary = torch.rand(10, 3)
    lat = build_lattice(torch.rand(10, 2))
    with pytest.raises(CRFError, match="compat"):
        meanfield(unary, [Kernel(lat, torch.empty(0), torch.empty(0), torch.ones(4))], 1)
    with pytest.raises(CRFError, match="covers"):
        meanfield(torch.rand(9, 3), [Kernel(lat, torch.empty(0), torch.empty(0), torch.ones(3))], 1)


def _cuda_modes_case(L, compat_kind, seed):
    """unary (P, L) and two kernels (d = 2 and d = 5) with the given compatibility form."""
    img, scores = scene(1, 37, 45, L, seed)
    unary = -torch.log_softmax(scores[0].reshape(L, -1).t(), 1).contiguous()
    hwc = img[0].permute(1, 2, 0)
    g = torch.Generator().manual_seed(seed)
    kernels = []
    for feats, norm, w in ((grid_features(37, 45, 3.0), "NORMALIZE_AFTER", 3.0),
                           (grid_features(37, 45, 9.0, hwc, 6.0), "NORMALIZE_SYMMETRIC", 4.0)):
        lat = build_lattice(feats.float().contiguous())
        if compat_kind == "potts":
            c = torch.full((L,), -w)
        elif compat_kind == "diagonal":
            c = -w * torch.rand(L, generator=g)
        else:
            m = torch.rand(L, L, generator=g)
            c = -w * (m + m.t()) / 2
        kernels.append(Kernel(lat, *kernel_norms(lat, norm), c.float().contiguous()))
    return unary, kernels


@pytest.mark.parametrize("L,compat_kind,norm", [(21, "potts", None), (5, "diagonal", None),
                                                (2, "potts", None), (1, "potts", None),
                                                (3000, "potts", None), (21, "potts", "BEFORE")])
def test_cuda_fused_update_maths_on_the_host(monkeypatch, L, compat_kind, norm):
    """DEEPLAB_CAFFE_CRF_CPU=cuda-twin runs the CUDA fused update's own code (its per-element
    maths and softmax, in its tiles) on the host: the same bits as the CPU update, so the GPU
    kernel's arithmetic is checked without a GPU.  L = 3000 makes 4-point tiles and a ragged last
    tile; L = 2 takes densecrf's scalar rounding; BEFORE splats pre-scaled values."""
    unary, kernels = _cuda_modes_case(L, compat_kind, 4)
    if norm == "BEFORE":
        kernels = [Kernel(k.lattice, *kernel_norms(k.lattice, "NORMALIZE_BEFORE"), k.compat)
                   for k in kernels]
    ref = meanfield(unary, kernels, 4)
    if L == 1:  # one label (rows of one unpadded value; this once overran a scratch row)
        assert bool((ref == 1).all())
    monkeypatch.setenv("DEEPLAB_CAFFE_CRF_CPU", "cuda-twin")
    twin = meanfield(unary, kernels, 4)
    assert torch.equal(twin, ref)
    monkeypatch.setenv("DEEPLAB_CAFFE_CRF_CPU", "fast")
    with pytest.raises(CRFError, match="DEEPLAB_CAFFE_CRF_CPU must be unset or cuda-twin"):
        meanfield(unary, kernels, 1)


@pytest.mark.parametrize("norm", ["NORMALIZE_AFTER", "NORMALIZE_BEFORE"])
def test_splat_fused_into_the_update_gives_the_same_bits(monkeypatch, norm):
    """On <= 2 threads the CPU loop splats each new Q row as soon as its update makes it, the two
    fixed halves of the points each in point order (130 x 150 = 19500 >= 16384 points: two
    halves); the cuda-twin mode keeps every splat a separate pass over Q.  Same bits, with
    NORMALIZE_BEFORE's pre-scaled splat too, on one thread and on two."""
    img, scores = scene(1, 130, 150, 21, 8)
    unary = -torch.log_softmax(scores[0].reshape(21, -1).t(), 1).contiguous()
    hwc = img[0].permute(1, 2, 0)
    kernels = []
    for feats, w in ((grid_features(130, 150, 3.0), 3.0),
                     (grid_features(130, 150, 40.0, hwc, 5.0), 4.0)):
        lat = build_lattice(feats.float().contiguous())
        kernels.append(Kernel(lat, *kernel_norms(lat, norm), torch.full((21,), -w)))
    monkeypatch.setenv("DEEPLAB_CAFFE_CRF_CPU", "cuda-twin")
    separate = meanfield(unary, kernels, 5)
    monkeypatch.delenv("DEEPLAB_CAFFE_CRF_CPU")
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            assert torch.equal(meanfield(unary, kernels, 5), separate), n
    finally:
        torch.set_num_threads(threads)


def test_densecrf_module_numpy_and_torch_inputs():
    """The pydensecrf-style class: numpy in -> numpy out, torch (DLPack) in -> torch out, same Q;
    it equals dense_crf under the same settings."""
    import numpy as np
    import deeplab_caffe.crf.densecrf as dcrf
    from deeplab_caffe.crf import utils

    img, scores = scene(1, 14, 19, 4, 8)
    rgb = img[0].permute(1, 2, 0).round().to(torch.uint8).contiguous()
    U = utils.unary_from_softmax(torch.softmax(scores[0], 0).numpy())
    outs = []
    for as_torch in (False, True):
        d = dcrf.DenseCRF2D(19, 14, 4)
        d.setUnaryEnergy(torch.from_numpy(U) if as_torch else U)
        d.addPairwiseGaussian(sxy=3, compat=3, normalization=dcrf.NORMALIZE_AFTER)
        d.addPairwiseBilateral(sxy=7, srgb=9, rgbim=rgb if as_torch else rgb.numpy(), compat=5,
                               normalization=dcrf.NORMALIZE_AFTER)
        q = d.inference(5)
        assert isinstance(q, torch.Tensor) == as_torch
        outs.append(np.asarray(q))
    np.testing.assert_array_equal(outs[0], outs[1])
    ref = dense_crf(torch.from_numpy(U).reshape(1, 4, 14, 19), rgb.permute(2, 0, 1)[None].float(),
                    pos_w=3, pos_xy_std=3, bi_w=5, bi_xy_std=7, bi_rgb_std=9, max_iter=5,
                    input_type="unary")
    np.testing.assert_array_equal(outs[0], ref.reshape(4, -1).numpy())


def test_gradient_through_the_crf_ops_is_an_error():
    # The fused mean-field op and the lattice build have no backward (the filter's is its
    # adjoint, test_crf_grad.py): asking for a gradient must raise, never return zeros silently.
    from deeplab_caffe.errors import CRFError
    from deeplab_caffe.ops import crf as crf_ops
    g = torch.Generator().manual_seed(3)
    feats = torch.rand(40, 2, generator=g) * 5
    unary = torch.rand(40, 3, generator=g)
    lat = crf_ops.build_lattice(feats)
    kern = crf_ops.Kernel(lat, torch.empty(0), torch.empty(0), -torch.ones(3))
    want = crf_ops.meanfield(unary, [kern], 3)
    cases = {
        "dense_crf_meanfield": lambda x: crf_ops.meanfield(x, [kern], 3),
        "permutohedral_build": lambda x: crf_ops.build_lattice(x[:, :2].contiguous()).weights,
    }
    for op, f in cases.items():
        x = unary.clone().requires_grad_()
        out = f(x)
        with pytest.raises(CRFError, match=f"{op} has no backward"):
            out.sum().backward()
        assert x.grad is None
    # The forward values do not change when the inputs require grad.
    assert torch.equal(crf_ops.meanfield(unary.clone().requires_grad_(), [kern], 3).detach(),
                       want)
