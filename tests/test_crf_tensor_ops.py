"""The CRF front ends' tensor helpers (deeplab_caffe/crf/tensor_ops.py) against torch's own."""
import pytest
import torch

from deeplab_caffe.crf.tensor_ops import all_finite, transposed


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", [0, 517, -1])
def test_all_finite_finds_any_non_finite(bad, where):
    t = torch.randn(21, 40)
    assert all_finite(t)
    t.view(-1)[where] = bad
    assert not all_finite(t)
    assert not all_finite(t.t())                       # a strided view
    assert not all_finite(t.clone().requires_grad_())  # a tensor in a graph


def test_all_finite_of_nothing_is_true():
    assert all_finite(torch.empty(0, 3))


@pytest.mark.parametrize("shape", [(21, 5000), (3, 9000), (7, 1), (1, 4097)])
def test_transposed_is_the_contiguous_transpose(shape):
    t = torch.randn(*shape)
    out = transposed(t)
    assert out.is_contiguous() and torch.equal(out, t.t())
    strided = torch.randn(shape[1], shape[0] * 2)[:, ::2].t()   # not contiguous either way
    assert torch.equal(transposed(strided), strided.t())


def test_transposed_view_costs_nothing_and_grad_flows():
    base = torch.randn(5, 8)
    assert transposed(base.t()).data_ptr() == base.data_ptr()
    x = torch.randn(4, 6, requires_grad=True)
    (transposed(x) * torch.arange(24.0).reshape(6, 4)).sum().backward()
    assert torch.equal(x.grad, torch.arange(24.0).reshape(6, 4).t())
