"""Permutohedral lattice: against a naive dict-based lattice (same algorithm, exact), against the
brute-force Gaussian filter (approximation within the calibrated bounds), structure, keys that do
not overflow, batching through image ids, errors."""
import numpy as np
import pytest
import torch

import deeplab_caffe  # noqa: F401
from deeplab_caffe.errors import CRFError
from deeplab_caffe.ops.crf import Kernel, build_lattice, lattice_filter, meanfield

from crf_reference import gaussian_matrix, naive_lattice_filter


def smooth_image(h, w, seed):
    """(h, w, 3) float32 in 0..255: a few blobs and edges, like a small photograph."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing="ij")
    img = torch.zeros(h, w, 3, dtype=torch.float64)
    for _ in range(5):
        cy, cx = torch.rand(2, generator=g) * torch.tensor([h, w])
        r = 3 + torch.rand(1, generator=g) * min(h, w) / 2
        col = torch.rand(3, generator=g) * 255
        mask = ((ys - cy) ** 2 + (xs - cx) ** 2 < r ** 2).double()
        img = img * (1 - mask[..., None]) + mask[..., None] * col
    img += torch.randn(h, w, 3, generator=g, dtype=torch.float64) * 4
    return img.clamp(0, 255).round().float()


def grid_features(h, w, sxy, img=None, srgb=None):
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    f = [xs.reshape(-1) / sxy, ys.reshape(-1) / sxy]
    if img is not None:
        f += [img[..., c].reshape(-1) / srgb for c in range(3)]
    return torch.stack(f, 1).contiguous()


# C = 1 (the normaliser's one unpadded value) and C = 8 (whole SIMD rows) are filtered in place
# of the padded copy the other widths take.
@pytest.mark.parametrize("C", [1, 4, 8])
@pytest.mark.parametrize("d", [1, 2, 3, 5, 8])
def test_matches_naive_lattice(d, C):
    g = torch.Generator().manual_seed(d)
    P = 90
    feats = (torch.randn(P, d, generator=g) * 2.5).float()
    vals = torch.rand(P, C, generator=g).float()
    lat = build_lattice(feats)
    ours = lattice_filter(vals, lat).double().numpy()
    ref, M = naive_lattice_filter(feats.numpy(), vals.numpy())
    assert lat.num_vertices == M
    np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=1e-6)
    ours_r = lattice_filter(vals, lat, reverse=True).double().numpy()
    ref_r, _ = naive_lattice_filter(feats.numpy(), vals.numpy(), reverse=True)
    np.testing.assert_allclose(ours_r, ref_r, rtol=2e-5, atol=1e-6)


def test_large_lattice_two_half_insert_matches_naive():
    """From 16384 points the CPU inserts two halves at once and merges them: the same vertices
    as the naive dict lattice, numbered by first occurrence over all (point, corner) entries
    (what the CUDA twin reproduces), and the same filter."""
    h, w = 130, 150
    img = smooth_image(h, w, 1)
    feats = grid_features(h, w, 9.0, img, 6.0)
    vals = torch.rand(h * w, 2, generator=torch.Generator().manual_seed(3))
    lat = build_lattice(feats)
    ref, M = naive_lattice_filter(feats.numpy(), vals.numpy())
    assert lat.num_points >= 16384 and lat.num_vertices == M
    flat = lat.offsets.reshape(-1)
    seen = torch.zeros(M, dtype=torch.bool)
    first = []
    for v in flat.tolist():
        if not seen[v]:
            seen[v] = True
            first.append(v)
    assert first == list(range(M))
    np.testing.assert_allclose(lattice_filter(vals, lat).double().numpy(), ref, rtol=2e-5,
                               atol=1e-6)


def test_structure():
    img = smooth_image(23, 31, 0)
    lat = build_lattice(grid_features(23, 31, 3.0, img, 10.0))
    P, dp1 = lat.offsets.shape
    M = lat.num_vertices
    assert dp1 == 6 and P == 23 * 31 and 0 < M <= P * dp1
    w = lat.weights
    assert bool((w >= -1e-6).all())
    torch.testing.assert_close(w.sum(1), torch.ones(P), atol=1e-5, rtol=0)
    # the d+1 corners of a simplex are distinct vertices
    assert bool((lat.offsets.sort(1).values.diff(1) > 0).all())
    # neighbours are mutual: n1 of v along j has v as its n2
    nb = lat.blur_neighbors.long()
    for j in range(dp1):
        n1 = nb[j, :, 0]
        has = n1 >= 0
        assert torch.equal(nb[j, n1[has], 1], torch.arange(M)[has])
    # CSR: every entry once, ascending within each vertex, pointing at its vertex
    src = lat.splat_src.long()
    assert torch.equal(src.sort().values, torch.arange(P * dp1))
    ptr = lat.splat_ptr.long()
    vert = torch.repeat_interleave(torch.arange(M), ptr.diff())
    assert torch.equal(lat.offsets.reshape(-1).long()[src], vert)
    same_vertex = vert[1:] == vert[:-1]
    assert int(same_vertex.sum()) > P  # vertices shared by many entries: the order is tested
    assert bool((src.diff()[same_vertex] > 0).all())


@pytest.mark.parametrize("d,bound", [(2, 0.05), (5, 0.2)])
def test_against_brute_force_gaussian(d, bound):
    h, w = 30, 40
    img = smooth_image(h, w, 1)
    feats = grid_features(h, w, 3.0) if d == 2 else grid_features(h, w, 8.0, img, 13.0)
    g = torch.Generator().manual_seed(2)
    vals = torch.nn.functional.avg_pool2d(torch.rand(1, 3, h + 4, w + 4, generator=g), 5, 1)
    vals = vals[0].reshape(3, -1).t().contiguous()
    lat = build_lattice(feats)
    ones = torch.ones(h * w, 1)
    ours = (lattice_filter(vals, lat) / lattice_filter(ones, lat)).double()
    K = gaussian_matrix(feats)
    exact = (K @ vals.double()) / K.sum(1, keepdim=True)
    rel = float(torch.linalg.norm(ours - exact) / torch.linalg.norm(exact))
    assert rel < bound, rel
    assert rel > 1e-4  # it is an approximation; equality would mean the test compares nothing


def test_keys_do_not_overflow_int16():
    # rem0 of the far point is 65536: an int16 key would alias it with the point at 0.
    s = float(np.float32(np.sqrt(2.0 / 3.0) * 2 / np.sqrt(2.0)))
    far = np.float32(65536 / s)
    feats = torch.tensor([[0.0], [far]], dtype=torch.float32)
    lat = build_lattice(feats)
    out = lattice_filter(torch.tensor([[1.0], [0.0]]), lat)
    assert lat.num_vertices == 4
    assert float(out[1, 0]) == 0.0 and float(out[0, 0]) > 0


def test_tiny_std_large_image_no_overflow():
    feats = grid_features(50, 60, 1e-3)       # coordinates up to ~6e4 before scaling
    lat = build_lattice(feats)
    out = lattice_filter(torch.ones(3000, 1), lat)
    # every pixel is isolated: it filters exactly as if it were alone
    for p in (0, 1, 61, 1234, 2999):
        alone = lattice_filter(torch.ones(1, 1), build_lattice(feats[p:p + 1].contiguous()))
        assert torch.equal(out[p], alone[0])


def test_image_ids_make_disjoint_lattices():
    img_a, img_b = smooth_image(12, 15, 3), smooth_image(12, 15, 4)
    fa, fb = grid_features(12, 15, 5.0, img_a, 9.0), grid_features(12, 15, 5.0, img_b, 9.0)
    g = torch.Generator().manual_seed(5)
    va, vb = torch.rand(180, 3, generator=g), torch.rand(180, 3, generator=g)
    ids = torch.cat([torch.zeros(180, dtype=torch.int32), torch.ones(180, dtype=torch.int32)])
    both = build_lattice(torch.cat([fa, fb]), ids)
    out = lattice_filter(torch.cat([va, vb]), both)
    assert torch.equal(out[:180], lattice_filter(va, build_lattice(fa)))
    assert torch.equal(out[180:], lattice_filter(vb, build_lattice(fb)))


def test_errors():
    with pytest.raises(CRFError, match="float32"):
        build_lattice(torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(CRFError, match="non-finite"):
        build_lattice(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(CRFError, match="1 <= d <= 16"):
        build_lattice(torch.zeros(4, 17))
    with pytest.raises(CRFError, match="too large"):
        build_lattice(torch.tensor([[0.0, 3e9]]))
    lat = build_lattice(torch.rand(10, 2))
    with pytest.raises(CRFError, match="values"):
        lattice_filter(torch.rand(9, 2), lat)
    with pytest.raises(CRFError, match="image_ids"):
        build_lattice(torch.rand(10, 2), torch.zeros(9, dtype=torch.int32))


def test_empty():
    lat = build_lattice(torch.zeros(0, 3))
    assert lat.num_vertices == 0
    assert lattice_filter(torch.zeros(0, 2), lat).shape == (0, 2)


@pytest.mark.parametrize("with_ids", [False, True])
def test_padding_points(with_ids):
    """build_lattice(pad_to=4): each image's points padded to a multiple of 4 with points at
    feature 0 (pydensecrf's lattice); the padding adds vertices but no rows, splats or slices."""
    g = torch.Generator().manual_seed(5)
    feats = torch.rand(4 * 10 + 3, 3, generator=g) * 4 + 0.5
    ids = torch.tensor([0] * 21 + [1] * 22, dtype=torch.int32) if with_ids else None
    plain = build_lattice(feats, ids)
    padded = build_lattice(feats, ids, pad_to=4)
    # 43 points need 1 padding point; with ids, 21 points need 3 and 22 points 2
    extra = torch.cat([feats, torch.zeros(5 if with_ids else 1, 3)])
    extra_ids = torch.tensor([0] * 21 + [1] * 22 + [0] * 3 + [1] * 2, dtype=torch.int32) \
        if with_ids else None
    full = build_lattice(extra, extra_ids)
    P = feats.shape[0]
    assert padded.num_points == P and padded.num_vertices == full.num_vertices
    assert padded.num_vertices > plain.num_vertices
    assert torch.equal(padded.offsets, full.offsets[:P])
    assert torch.equal(padded.weights, full.weights[:P])
    assert torch.equal(padded.blur_neighbors, full.blur_neighbors)
    # CSR: the real entries only, ascending within each vertex, pointing at their vertex
    src = padded.splat_src.long()
    assert torch.equal(src.sort().values, torch.arange(P * 4))
    ptr = padded.splat_ptr.long()
    for v in range(padded.num_vertices):
        seg = src[ptr[v]:ptr[v + 1]]
        assert bool((seg.diff() > 0).all())
        assert bool((padded.offsets.reshape(-1)[seg] == v).all())
    # filtering ignores the padding points' (absent) values: the op gives what the full lattice
    # gives with zeros there, and the mean-field's own splat (which skips zeroing the rows of
    # vertices no point reaches) what iterating through the op gives
    vals = torch.rand(P, 5, generator=g)
    out = lattice_filter(vals, padded)
    with_zeros = torch.cat([vals, torch.zeros(extra.shape[0] - P, 5)])
    assert torch.equal(out, lattice_filter(with_zeros, full)[:P])
    unary = torch.rand(P, 5, generator=g) * 3
    q = meanfield(unary, [Kernel(padded, torch.empty(0), torch.empty(0), torch.full((5,), -3.0))],
                  3)
    ref = torch.softmax(-unary.double(), 1)
    for _ in range(3):
        msg = lattice_filter(ref.float().contiguous(), padded).double()
        ref = torch.softmax(-unary.double() + 3.0 * msg, 1)
    torch.testing.assert_close(q.double(), ref, atol=2e-6, rtol=0)
    with pytest.raises(CRFError, match="pad_to"):
        build_lattice(feats, pad_to=0)
    no_padding_needed = build_lattice(feats[:40], pad_to=4)
    assert no_padding_needed.num_vertices == build_lattice(feats[:40]).num_vertices
