"""deeplab_caffe.crf against pydensecrf (the pydensecrf2 package, a test oracle only) on the same
inputs: every normalisation, Potts / diagonal / matrix compatibility, the step API, utils."""
import numpy as np
import pytest
import torch

import deeplab_caffe  # noqa: F401
import deeplab_caffe.crf.densecrf as ours
import deeplab_caffe.crf.utils as ours_utils
from deeplab_caffe.crf import dense_crf
from deeplab_caffe.data.synthetic import synthetic_photo
from deeplab_caffe.errors import CRFError

dcrf = pytest.importorskip("pydensecrf.densecrf")
dutils = pytest.importorskip("pydensecrf.utils")


def photo(w, h, seed):
    return synthetic_photo(w, h, seed)


def softmax_for(img, L, seed):
    """(L, h, w) float32 class probabilities loosely tied to colour, with noise."""
    rng = np.random.default_rng(seed)
    h, w, _ = img.shape
    logits = (img.reshape(-1, 3) / 60.0) @ rng.normal(size=(3, L)) + rng.normal(0, 1.2, (h * w, L))
    e = np.exp(logits - logits.max(1, keepdims=True))
    return np.ascontiguousarray((e / e.sum(1, keepdims=True)).T.reshape(L, h, w).astype(np.float32))


def run_both(img, U, L, add, niter=10):
    h, w, _ = img.shape
    res = []
    for mod in (dcrf, ours):
        d = mod.DenseCRF2D(w, h, L)
        d.setUnaryEnergy(U)
        add(d, mod)
        res.append(np.array(d.inference(niter)).reshape(L, h * w))
    return res


def assert_same(a, b, atol):
    assert np.abs(a - b).max() <= atol, np.abs(a - b).max()
    assert (a.argmax(0) == b.argmax(0)).mean() >= 0.999


@pytest.mark.parametrize("norm", ["NO_NORMALIZATION", "NORMALIZE_BEFORE", "NORMALIZE_AFTER",
                                  "NORMALIZE_SYMMETRIC"])
def test_potts_every_normalization(norm):
    img = photo(96, 72, 0)
    L = 6
    U = ours_utils.unary_from_softmax(softmax_for(img, L, 1))

    def add(d, mod):
        code = getattr(mod, norm)
        d.addPairwiseGaussian(sxy=3, compat=3, normalization=code)
        d.addPairwiseBilateral(sxy=30, srgb=13, rgbim=img, compat=10, normalization=code)
    theirs, mine = run_both(img, U, L, add)
    assert_same(theirs, mine, 1e-5)


def test_diagonal_and_matrix_compat():
    img = photo(80, 64, 2)
    L = 5
    U = ours_utils.unary_from_softmax(softmax_for(img, L, 3))
    rng = np.random.default_rng(4)
    diag = rng.uniform(-6, 0, L).astype(np.float32)
    mat = rng.uniform(0, 5, (L, L)).astype(np.float32)

    def add(d, mod):
        d.addPairwiseGaussian(sxy=(3, 4), compat=diag, kernel=mod.DIAG_KERNEL)
        d.addPairwiseBilateral(sxy=(20, 25), srgb=(10, 12, 14), rgbim=img, compat=mat,
                               kernel=mod.FULL_KERNEL, normalization=mod.NORMALIZE_AFTER)
    theirs, mine = run_both(img, U, L, add)
    assert_same(theirs, mine, 1e-5)


def test_generic_features_and_utils():
    img = photo(64, 48, 5)
    L = 4
    sm = softmax_for(img, L, 6)
    U = ours_utils.unary_from_softmax(sm, scale=0.9)
    np.testing.assert_array_equal(U, dutils.unary_from_softmax(sm, scale=0.9))
    labels = np.random.default_rng(7).integers(0, L + 1, (48, 64))
    for zu in (True, False):
        n = L + 1 if not zu else L
        np.testing.assert_array_equal(ours_utils.unary_from_labels(labels, n, 0.7, zero_unsure=zu),
                                      dutils.unary_from_labels(labels, n, 0.7, zero_unsure=zu))
    fg = ours_utils.create_pairwise_gaussian((3, 5), (48, 64))
    np.testing.assert_array_equal(fg, dutils.create_pairwise_gaussian((3, 5), (48, 64)))
    fb = ours_utils.create_pairwise_bilateral((15, 15), (9, 10, 11), img, chdim=2)
    np.testing.assert_array_equal(
        fb, dutils.create_pairwise_bilateral((15, 15), (9, 10, 11), img, chdim=2))
    gray = img[..., 1]
    fg1 = ours_utils.create_pairwise_bilateral((10, 10), 8, gray)
    np.testing.assert_array_equal(fg1, dutils.create_pairwise_bilateral((10, 10), 8, gray))

    res = []
    for mod in (dcrf, ours):
        d = mod.DenseCRF(64 * 48, L)
        d.setUnaryEnergy(U)
        d.addPairwiseEnergy(fg, compat=2)
        d.addPairwiseEnergy(fb, compat=6, normalization=mod.NORMALIZE_AFTER)
        d.addPairwiseEnergy(fg1, compat=np.full(L, -1.5, np.float32))
        res.append(np.array(d.inference(6)))
    assert_same(res[0], res[1], 1e-5)


def test_step_api_and_kl():
    img = photo(50, 40, 8)
    L = 3
    U = ours_utils.unary_from_softmax(softmax_for(img, L, 9))
    crfs = []
    for mod in (dcrf, ours):
        d = mod.DenseCRF2D(50, 40, L)
        d.setUnaryEnergy(U)
        d.addPairwiseGaussian(sxy=3, compat=3)
        d.addPairwiseBilateral(sxy=20, srgb=10, rgbim=img, compat=5)
        crfs.append(d)
    Q, t1, t2 = crfs[1].startInference()
    for _ in range(4):
        crfs[1].stepInference(Q, t1, t2)
    np.testing.assert_array_equal(Q, crfs[1].inference(4))
    q_theirs = crfs[0].inference(4)
    assert_same(np.array(q_theirs), Q, 1e-5)
    kl_theirs = crfs[0].klDivergence(q_theirs)
    assert crfs[1].klDivergence(Q) == pytest.approx(kl_theirs, rel=1e-4, abs=1e-2)


def test_dense_crf_matches_pydensecrf_deeplab_settings():
    """dense_crf (DeepLab semantics: NORMALIZE_AFTER, Potts, -log softmax) on an RGB image."""
    img = photo(110, 85, 10)
    L = 8
    sm = softmax_for(img, L, 11)
    scores = torch.from_numpy(np.log(sm))
    q = dense_crf(scores, torch.from_numpy(img).permute(2, 0, 1), pos_w=3, pos_xy_std=3, bi_w=4,
                  bi_xy_std=50, bi_rgb_std=5, max_iter=10).reshape(L, -1).numpy()
    d = dcrf.DenseCRF2D(110, 85, L)
    d.setUnaryEnergy(np.ascontiguousarray(-torch.log_softmax(scores, 0).reshape(L, -1).numpy()))
    d.addPairwiseGaussian(sxy=3, compat=3, normalization=dcrf.NORMALIZE_AFTER)
    d.addPairwiseBilateral(sxy=50, srgb=5, rgbim=img, compat=4, normalization=dcrf.NORMALIZE_AFTER)
    assert_same(np.array(d.inference(10)), q, 1e-5)


def test_compat_api_errors():
    d = ours.DenseCRF2D(8, 6, 3)
    with pytest.raises(CRFError, match="Bad shape for unary"):
        d.setUnaryEnergy(np.zeros((3, 47), np.float32))
    with pytest.raises(CRFError, match="float32"):
        d.setUnaryEnergy(np.zeros((3, 48), np.float64))
    with pytest.raises(CRFError, match="Bad shape for pairwise bilateral"):
        d.addPairwiseBilateral(sxy=3, srgb=3, rgbim=np.zeros((5, 8, 3), np.uint8), compat=1)
    with pytest.raises(CRFError, match="sxy"):
        d.addPairwiseGaussian(sxy=0, compat=1)
    with pytest.raises(CRFError, match="compat"):
        d.addPairwiseGaussian(sxy=3, compat=np.ones(4, np.float32))
    with pytest.raises(CRFError, match="nlabels"):
        ours.DenseCRF2D(8, 6, 1)
    with pytest.raises(CRFError, match="normalization"):
        d.addPairwiseGaussian(sxy=3, compat=1, normalization=7)


def real_photograph():
    """grace_hopper.jpg (600x512, a scanned portrait) from matplotlib's sample data, or None."""
    try:
        import matplotlib.cbook as cbook
        from PIL import Image
        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    except (ImportError, OSError, ValueError):
        return None
    return np.array(Image.open(path).convert("RGB"), dtype=np.uint8)  # writable, C order


@pytest.mark.parametrize("threads", [1, 2])
def test_real_photograph_with_deeplab_largefov_parameters(threads):
    """A real photograph (not a synthetic one) at full size, DeepLab-LargeFOV's CRF (pos 3/3,
    bilateral 4/121/5, 21 labels, 10 iterations, NORMALIZE_AFTER): marginals within float
    rounding of pydensecrf's and >= 99.9% identical labels, with one and with two threads."""
    img = real_photograph()
    if img is None:
        pytest.skip("matplotlib's sample photograph (pip install matplotlib) is not installed")
    h, w, _ = img.shape
    L = 21
    U = ours_utils.unary_from_softmax(softmax_for(img, L, 21))

    def add(d, mod):
        d.addPairwiseGaussian(sxy=3, compat=3, normalization=mod.NORMALIZE_AFTER)
        d.addPairwiseBilateral(sxy=121, srgb=5, rgbim=img, compat=4,
                               normalization=mod.NORMALIZE_AFTER)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        theirs, mine = run_both(img, U, L, add)
    finally:
        torch.set_num_threads(old)
    assert np.abs(theirs - mine).max() <= 2e-5     # measured 2.6e-6
    assert (theirs.argmax(0) == mine.argmax(0)).mean() >= 0.999
    # The CRF did something: the labels moved away from the unary's argmax.
    assert (mine.argmax(0) != U.reshape(L, -1).argmin(0)).mean() > 0.05


@pytest.mark.parametrize("h,w", [(37, 127), (39, 127), (37, 126), (37, 128)])
def test_padding_points_of_pydensecrf_lattice(h, w):
    """pydensecrf places points 4 at a time and pads the last block with points at feature 0,
    whose vertices join its lattice; with a large colour std real points sit next to them and
    the blur passes through them (without them the marginals differ by ~1e-4 when h*w is not a
    multiple of 4).  The drop-in builds the same lattice: float-rounding agreement."""
    img = np.ascontiguousarray(photo(128, 40, 3)[:h, :w])
    L = 4
    U = np.ascontiguousarray(np.random.default_rng(3).uniform(0.1, 3, (L, h * w)).astype(np.float32))

    def add(d, mod):
        d.addPairwiseBilateral(sxy=80, srgb=80, rgbim=img, compat=5,
                               normalization=mod.NORMALIZE_AFTER)
    theirs, mine = run_both(img, U, L, add, niter=3)
    assert_same(theirs, mine, 2e-6)


def test_random_cases_agree_to_pydensecrfs_own_rounding():
    """30 seeded random cases (odd sizes, stds from 0.3 to 300, 2-39 labels, every
    normalisation, 1-11 iterations): labels >= 99.9% identical, and marginals as close to
    pydensecrf's as pydensecrf's own are to themselves when each unary entry moves by one ulp
    up or down (strong kernels over many iterations amplify float rounding; 10x that spread
    plus 2e-5)."""
    rng = np.random.default_rng(2026)
    norms = ["NO_NORMALIZATION", "NORMALIZE_BEFORE", "NORMALIZE_AFTER", "NORMALIZE_SYMMETRIC"]
    for case in range(30):
        w, h, L = int(rng.integers(5, 70)), int(rng.integers(5, 70)), int(rng.integers(2, 40))
        img = np.ascontiguousarray(photo(max(w, 24), max(h, 24), case)[:h, :w])
        U = np.ascontiguousarray(ours_utils.unary_from_softmax(
            softmax_for(img, L, case)).reshape(L, -1))
        nm = norms[case % 4]
        sxy, srgb, gxy = np.exp(rng.uniform(np.log([0.3, 0.5, 0.3]), np.log([300, 100, 30])))
        cb, cg, niter = rng.uniform(0, 10), rng.uniform(0, 5), int(rng.integers(1, 12))

        def run(mod, unary):
            d = mod.DenseCRF2D(w, h, L)
            d.setUnaryEnergy(unary)
            d.addPairwiseGaussian(sxy=gxy, compat=cg, normalization=getattr(mod, nm))
            d.addPairwiseBilateral(sxy=sxy, srgb=srgb, rgbim=img, compat=cb,
                                   normalization=getattr(mod, nm))
            return np.array(d.inference(niter)).reshape(L, -1)
        theirs, mine = run(dcrf, U), run(ours, U)
        direction = np.where(rng.random(U.shape) < 0.5, -np.inf, np.inf).astype(np.float32)
        nudged = run(dcrf, np.ascontiguousarray(np.nextafter(U, direction)))
        spread = np.abs(theirs - nudged).max()
        where = (w, h, L, nm, sxy, srgb, gxy, cb, cg, niter)
        assert (theirs.argmax(0) == mine.argmax(0)).mean() >= 0.999, where
        assert np.abs(theirs - mine).max() <= 10 * spread + 2e-5, (where, spread)
