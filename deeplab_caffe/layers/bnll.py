"""BNLL (binomial normal log likelihood): top = log(1 + exp(x)), written as Caffe does so that
neither branch overflows: x + log(1 + exp(-x)) for x > 0, log(1 + exp(x)) otherwise.  Caffe's
literal ``1.`` makes the sum a double computation rounded to the blob's type; we do the same.
The backward is Caffe's: top_diff * e / (e + 1), e = exp(min(x, 50)).
"""
import torch

from ._neuron import NeuronLayer, caffe_backward
from .base import register

BNLL_THRESHOLD = 50.0   # Caffe's kBNLL_THRESHOLD


def _forward(x):
    x64 = x.double()
    tail = torch.log(1.0 + torch.exp(-x64.abs()))
    return torch.where(x64 > 0, x64 + tail, tail).to(x.dtype)


def _backward(x, y, top_diff):
    e = torch.exp(x.clamp(max=BNLL_THRESHOLD))
    return top_diff * e / (e + 1)


@register("BNLL")
class BNLLLayer(NeuronLayer):
    def forward(self, x):
        return (caffe_backward(x, _forward, _backward),)
