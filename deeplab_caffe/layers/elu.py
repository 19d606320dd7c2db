"""ELU: top = max(x, 0) + alpha * (exp(min(x, 0)) - 1); Caffe's backward is top_diff for x > 0
and top_diff * (alpha + top) for x <= 0 (so alpha at x = 0)."""
import torch

from ._neuron import NeuronLayer, caffe_backward
from ._params import scalar
from .base import register


@register("ELU")
class ELULayer(NeuronLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.alpha = float(scalar(self.param("elu_param"), "alpha", 1.0))

    def forward(self, x):
        alpha = self.alpha

        def fwd(x):
            return x.clamp(min=0) + alpha * (torch.exp(x.clamp(max=0)) - 1)

        def bwd(x, y, top_diff):
            return top_diff * torch.where(x > 0, torch.ones_like(y), alpha + y)
        return (caffe_backward(x, fwd, bwd),)
