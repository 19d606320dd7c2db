"""Swish: top = x * sigmoid(beta * x), the sigmoid as Caffe's Sigmoid layer computes it; Caffe's
backward top_diff * (beta * top + s * (1 - beta * top)), s = sigmoid(beta * x)."""
from ._neuron import NeuronLayer, caffe_backward
from ._params import scalar
from .base import register
from .sigmoid import caffe_sigmoid


@register("Swish")
class SwishLayer(NeuronLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.beta = float(scalar(self.param("swish_param"), "beta", 1.0))

    def forward(self, x):
        beta = self.beta

        def fwd(x):
            return x * caffe_sigmoid(beta * x)

        def bwd(x, y, top_diff):
            s = caffe_sigmoid(beta * x)
            return top_diff * (beta * y + s * (1 - beta * y))
        return (caffe_backward(x, fwd, bwd),)
