"""Fillers: exact values for constant and bilinear, statistics for the random ones with a
tolerance derived from the sample size (5 standard errors)."""
import math

import pytest
import torch

from deeplab_caffe.errors import CaffeError
from deeplab_caffe.fillers import caffe_fans, fill
from deeplab_caffe.proto.message import Message
from conftest import requires_cuda


def filler(**fields):
    return Message("FillerParameter", fields)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def assert_moments(x, mean, std):
    """Sample mean and std within 5 standard errors of the expected ones."""
    x = x.double().flatten()
    n = x.numel()
    assert abs(x.mean().item() - mean) < 5 * std / math.sqrt(n) + 1e-12
    # std of the sample variance of a normal-ish variable ~ sigma^2 * sqrt(2/n) (uniform: less)
    assert abs(x.var().item() - std ** 2) < 5 * std ** 2 * math.sqrt(2.0 / n) + 1e-12


def test_default_is_constant_zero():
    t = torch.randn(3, 4)
    fill(t, None)
    assert torch.equal(t, torch.zeros(3, 4))


def test_constant_value_and_dtype():
    t = torch.empty(2, 3, 4, dtype=torch.float64)
    fill(t, filler(type="constant", value=0.25))
    assert torch.equal(t, torch.full((2, 3, 4), 0.25, dtype=torch.float64))


def test_uniform_bounds_and_moments():
    t = torch.empty(200, 500)
    fill(t, filler(type="uniform", min=-2.0, max=3.0), generator=gen(1))
    assert t.min() >= -2.0 and t.max() <= 3.0
    assert_moments(t, 0.5, 5.0 / math.sqrt(12.0))


def test_gaussian_default_std_is_one():
    t = torch.empty(100, 1000)
    fill(t, filler(type="gaussian", mean=1.5), generator=gen(2))
    assert_moments(t, 1.5, 1.0)


def test_gaussian_sparse_keeps_expected_fraction():
    # 50 outputs, sparse 10 -> keep probability 0.2
    t = torch.empty(50, 4000)
    fill(t, filler(type="gaussian", std=0.01, sparse=10), generator=gen(3))
    nz = (t != 0).double().mean().item()
    n = t.numel()
    assert abs(nz - 0.2) < 5 * math.sqrt(0.2 * 0.8 / n)
    kept = t[t != 0]
    assert_moments(kept, 0.0, 0.01)


def test_gaussian_sparse_zero_gives_zeros():
    t = torch.ones(4, 5)
    fill(t, filler(type="gaussian", sparse=0), generator=gen(4))
    assert torch.equal(t, torch.zeros(4, 5))


def test_caffe_fans():
    assert caffe_fans((64, 3, 3, 3)) == (27, 64 * 9)
    assert caffe_fans((10, 20)) == (20, 10)     # InnerProduct (num_output, K)
    assert caffe_fans((7,)) == (1, 7)           # bias: legacy channels() == 1


@pytest.mark.parametrize("norm", ["FAN_IN", "FAN_OUT", "AVERAGE"])
def test_xavier(norm):
    shape = (256, 32, 3, 3)
    fan_in, fan_out = 32 * 9, 256 * 9
    n = {"FAN_IN": fan_in, "FAN_OUT": fan_out, "AVERAGE": (fan_in + fan_out) / 2}[norm]
    bound = math.sqrt(3.0 / n)
    t = torch.empty(shape)
    fill(t, filler(type="xavier", variance_norm=norm), generator=gen(5))
    assert t.abs().max() <= bound
    assert t.abs().max() > 0.99 * bound
    assert_moments(t, 0.0, bound / math.sqrt(3.0))


@pytest.mark.parametrize("norm", ["FAN_IN", "FAN_OUT", "AVERAGE"])
def test_msra(norm):
    shape = (128, 64, 3, 3)
    fan_in, fan_out = 64 * 9, 128 * 9
    n = {"FAN_IN": fan_in, "FAN_OUT": fan_out, "AVERAGE": (fan_in + fan_out) / 2}[norm]
    t = torch.empty(shape)
    fill(t, filler(type="msra", variance_norm=norm), generator=gen(6))
    assert_moments(t, 0.0, math.sqrt(2.0 / n))


def test_fan_override():
    t = torch.empty(400, 500)
    fill(t, filler(type="msra"), fan_in=8, generator=gen(7))
    assert_moments(t, 0.0, 0.5)


def test_positive_unitball_rows_sum_to_one():
    t = torch.empty(6, 4, 5, 5)
    fill(t, filler(type="positive_unitball"), generator=gen(8))
    assert (t >= 0).all() and (t <= 1).all()
    torch.testing.assert_close(t.reshape(6, -1).sum(1), torch.ones(6), rtol=0, atol=1e-6)


def naive_bilinear(k):
    """BVLC master's BilinearFiller loop over the flat index, written out (the 2017 formula:
    c = (k - 1) / (2f))."""
    f = math.ceil(k / 2.0)
    c = (k - 1) / (2.0 * f)
    out = [[0.0] * k for _ in range(k)]
    for i in range(k * k):
        x, y = i % k, (i // k) % k
        out[y][x] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 7, 8, 11, 16])
def test_bilinear_matches_caffe_loop(k):
    t = torch.empty(3, 2, k, k, dtype=torch.float64)
    fill(t, filler(type="bilinear"))
    for n in range(3):
        for c in range(2):
            assert torch.equal(t[n, c], naive_bilinear(k))


def test_bilinear_odd_kernel_is_symmetric():
    # k = 3 (f = 2, the factor-2 kernel of an odd size): [.5 1 .5] per axis, so the 2-D kernel's
    # first row is [.25 .5 .25].  The pre-2017 formula gave [.25 .75 .75] per axis, first row
    # [.0625 .1875 .1875], which shifts FCN-style upsampling by a quarter pixel.
    t = torch.empty(2, 1, 3, 3, dtype=torch.float64)
    fill(t, filler(type="bilinear"))
    row = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
    assert torch.equal(t[1, 0], row[:, None] * row[None, :])
    assert t[0, 0, 0].tolist() == [0.25, 0.5, 0.25]
    t7 = torch.empty(1, 1, 7, 7, dtype=torch.float64)
    fill(t7, filler(type="bilinear"))
    # (the old formula: [1 3 5 7 5 3 1] / 8)
    row7 = torch.tensor([1, 2, 3, 4, 3, 2, 1], dtype=torch.float64) / 4
    assert torch.equal(t7[0, 0], row7[:, None] * row7[None, :])
    # float32 blobs: the same values to the last bit where they are exact in float32.
    t32 = torch.empty(1, 1, 3, 3)
    fill(t32, filler(type="bilinear"))
    assert torch.equal(t32[0, 0], (row[:, None] * row[None, :]).float())


def test_bilinear_known_kernels():
    t = torch.empty(1, 1, 4, 4, dtype=torch.float64)
    fill(t, filler(type="bilinear"))
    row = torch.tensor([0.25, 0.75, 0.75, 0.25], dtype=torch.float64)
    assert torch.equal(t[0, 0], row[:, None] * row[None, :])
    t5 = torch.empty(1, 1, 5, 5, dtype=torch.float64)
    fill(t5, filler(type="bilinear"))
    row5 = torch.tensor([1, 2, 3, 2, 1], dtype=torch.float64) / 3
    torch.testing.assert_close(t5[0, 0], row5[:, None] * row5[None, :], rtol=0, atol=1e-15)


def test_bilinear_needs_square_4d():
    with pytest.raises(CaffeError, match="square"):
        fill(torch.empty(1, 1, 3, 4), filler(type="bilinear"))
    with pytest.raises(CaffeError, match="4-D"):
        fill(torch.empty(3, 3), filler(type="bilinear"))


def test_unknown_type_named():
    with pytest.raises(CaffeError, match="'gausian'"):
        fill(torch.empty(2), filler(type="gausian"))


def test_sparse_rejected_outside_gaussian():
    with pytest.raises(CaffeError, match="sparse"):
        fill(torch.empty(2, 2), filler(type="uniform", sparse=1))


def test_a_given_generator_is_the_only_stream_drawn():
    # The values are the generator's own draws, and torch's default stream is left untouched.
    torch.manual_seed(0)
    untouched = torch.rand(3)
    torch.manual_seed(0)
    t = torch.empty(5, 7)
    fill(t, filler(type="gaussian", mean=0.5, std=0.01), generator=gen(9))
    assert torch.equal(t, torch.empty(5, 7).normal_(0.5, 0.01, generator=gen(9)))
    assert torch.equal(torch.rand(3), untouched)
    fill(t, filler(type="uniform", min=-1.0, max=2.0), generator=gen(9))
    assert torch.equal(t, torch.empty(5, 7).uniform_(-1.0, 2.0, generator=gen(9)))


@requires_cuda
def test_seeded_cpu_generator_gives_the_same_values_on_cuda():
    a, b = torch.empty(5, 7), torch.empty(5, 7, device="cuda")
    fill(a, filler(type="gaussian", std=0.01), generator=gen(9))
    fill(b, filler(type="gaussian", std=0.01), generator=gen(9))
    assert b.device.type == "cuda" and torch.equal(a, b.cpu())
