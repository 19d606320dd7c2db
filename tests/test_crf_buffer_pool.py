"""The CPU CRF's buffer pool (csrc/permutohedral/buffer_pool.h) hands a buffer back out only
after its owner is gone: results and lattices a caller still holds are never overwritten by a
later call, whatever it frees in between."""
import gc

import torch

from deeplab_caffe.ops.crf import Kernel, build_lattice, meanfield


def _problem(seed, h=40, w=50, labels=5):
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    rgb = torch.rand(h * w, 3, generator=g) * 255
    feats = torch.cat([xs.reshape(-1, 1) / 5, ys.reshape(-1, 1) / 5, rgb / 13], 1).contiguous()
    unary = torch.rand(h * w, labels, generator=g) * 3
    return feats, unary


def _kernel(lat, labels):
    empty = torch.empty(0)
    return Kernel(lat, empty, empty, torch.full((labels,), -3.0))


def test_results_held_by_the_caller_survive_later_calls():
    feats, unary = _problem(0)
    lat = build_lattice(feats)
    q1 = meanfield(unary, [_kernel(lat, 5)], 3)
    q1_bits = q1.clone()
    lat_bits = [t.clone() for t in lat]
    for seed in range(1, 6):  # calls of other sizes, freeing their results as they go
        f, u = _problem(seed, h=30 + 7 * seed, w=41)
        meanfield(u, [_kernel(build_lattice(f), 5)], 2 + seed % 3)
        gc.collect()
    assert torch.equal(q1, q1_bits)
    for t, bits in zip(lat, lat_bits):
        assert torch.equal(t, bits)


def test_a_recycled_buffer_gives_the_same_result():
    feats, unary = _problem(7)
    lat = build_lattice(feats)
    first = meanfield(unary, [_kernel(lat, 5)], 4).clone()
    for _ in range(3):  # each call reuses the buffers the previous one gave back
        again = meanfield(unary, [_kernel(build_lattice(feats), 5)], 4)
        assert torch.equal(again, first)
        del again
        gc.collect()


def test_pooled_results_behave_as_ordinary_tensors():
    feats, unary = _problem(3)
    q = meanfield(unary, [_kernel(build_lattice(feats), 5)], 2)
    assert q.is_contiguous() and q.dtype == torch.float32 and q.shape == unary.shape
    torch.testing.assert_close(q.sum(1), torch.ones(unary.shape[0]))
    q.mul_(2)  # writable in place
    assert torch.allclose(q.sum(1), torch.full((unary.shape[0],), 2.0))
