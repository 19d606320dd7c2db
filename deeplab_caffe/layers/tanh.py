"""TanH: top = tanh(x); backward top_diff * (1 - top^2).  ``engine`` only picks Caffe's
implementation."""
import torch

from ._neuron import NeuronLayer, caffe_backward
from .base import register


def _backward(x, y, top_diff):
    return top_diff * (1 - y * y)


@register("TanH")
class TanHLayer(NeuronLayer):
    def forward(self, x):
        return (caffe_backward(x, torch.tanh, _backward),)
