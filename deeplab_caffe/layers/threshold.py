"""Threshold: top = 1 where x > threshold, else 0.  Caffe has no backward for it
(NOT_IMPLEMENTED): a backward that reaches the bottom is an error naming the layer."""
from ._grad import refuse_backward
from ._neuron import NeuronLayer
from ._params import scalar
from .base import register


@register("Threshold")
class ThresholdLayer(NeuronLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.threshold = float(scalar(self.param("threshold_param"), "threshold", 0.0))

    def forward(self, x):
        out = (x > self.threshold).to(x.dtype)
        return (refuse_backward(self, out, [x], "Threshold has no backward (Caffe's "
                                                "NOT_IMPLEMENTED)"),)
