"""Sigmoid as BVLC master computes it: 0.5 * tanh(0.5 * x) + 0.5 (no overflow for large |x|);
backward top_diff * top * (1 - top).  ``engine`` only picks Caffe's implementation."""
import torch

from ._neuron import NeuronLayer, caffe_backward
from .base import register


def caffe_sigmoid(x):
    return 0.5 * torch.tanh(0.5 * x) + 0.5


def _backward(x, y, top_diff):
    return top_diff * y * (1 - y)


@register("Sigmoid")
class SigmoidLayer(NeuronLayer):
    def forward(self, x):
        return (caffe_backward(x, caffe_sigmoid, _backward),)
