"""The CPU mean field reads pydensecrf's (labels, pixels) layout in place: a unary given as the
transposed view of an (L, P) array gives bitwise the Q of its contiguous copy, returned in the
same layout (so the drop-in transposes neither way)."""
import numpy as np
import pytest
import torch

from deeplab_caffe.crf import densecrf as dc
from deeplab_caffe.ops.crf import Kernel, build_lattice, meanfield


def _kernels(P, labels, full=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = 23
    idx = torch.arange(P, dtype=torch.float32)
    xy = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], 1)
    rgb = torch.rand(P, 3, generator=g) * 255
    ks = []
    for feats, weight in ((xy / 3, 3.0), (torch.cat([xy / 20, rgb / 13], 1), 5.0)):
        lat = build_lattice(feats.contiguous())
        n = torch.rand(P, generator=g) + 0.5
        c = torch.full((labels,), -weight)
        if full:
            c = -weight * torch.eye(labels) + 0.3 * torch.rand(labels, labels, generator=g)
            c = 0.5 * (c + c.t())
        ks.append(Kernel(lat, torch.empty(0), n, c.contiguous()))
    return ks


# P not a multiple of 8 (the transposes' scalar tail), labels past one and two SIMD blocks.
@pytest.mark.parametrize("P,labels", [(1003, 21), (64, 8), (517, 3), (800, 33)])
@pytest.mark.parametrize("iters", [0, 1, 4])
def test_labels_first_unary_same_bits(P, labels, iters):
    g = torch.Generator().manual_seed(P + labels)
    unary_lp = (torch.rand(labels, P, generator=g) * 4).contiguous()   # pydensecrf's (L, P)
    ks = _kernels(P, labels)
    ref = meanfield(unary_lp.t().contiguous(), ks, iters)
    q = meanfield(unary_lp.t(), ks, iters)
    assert q.shape == (P, labels)
    assert q.t().is_contiguous()           # returned in the unary's layout
    assert torch.equal(q, ref)


def test_labels_first_other_paths_same_bits():
    """A full compatibility matrix, no kernels, and a q_init take the paths that read -unary by
    rows: the same bits too, and the output still follows the unary's layout."""
    P, labels = 611, 6
    g = torch.Generator().manual_seed(5)
    unary_lp = torch.rand(labels, P, generator=g) * 3
    q0 = torch.softmax(torch.rand(P, labels, generator=g), 1)
    for ks, q_init in ((_kernels(P, labels, full=True), None), ([], None),
                       (_kernels(P, labels), q0)):
        ref = meanfield(unary_lp.t().contiguous(), ks, 3, q_init)
        q = meanfield(unary_lp.t(), ks, 3, q_init)
        assert torch.equal(q, ref) and q.t().is_contiguous()


def test_dropin_returns_a_copy_in_pydensecrf_layout():
    """The drop-in keeps a copy of the unary (as pydensecrf does): changing the caller's array
    after setUnaryEnergy changes nothing, and Q comes back (labels, pixels) C-contiguous."""
    w, h, labels = 31, 17, 4
    rng = np.random.default_rng(0)
    U = rng.random((labels, w * h), dtype=np.float32) * 3
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)

    def run(u, scribble):
        d = dc.DenseCRF2D(w, h, labels)
        d.setUnaryEnergy(u)
        if scribble:
            u[...] = 0
        d.addPairwiseGaussian(sxy=3, compat=3)
        d.addPairwiseBilateral(sxy=20, srgb=13, rgbim=img, compat=5)
        return np.asarray(d.inference(5))

    ref = run(U.copy(), False)
    q = run(U.copy(), True)
    assert q.shape == (labels, w * h) and q.flags["C_CONTIGUOUS"]
    assert np.array_equal(q, ref)
