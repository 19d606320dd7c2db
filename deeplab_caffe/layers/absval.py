"""AbsVal: top = |x|; Caffe's backward is top_diff * sign(x), 0 at x = 0."""
import torch

from ._neuron import NeuronLayer
from .base import register


@register("AbsVal")
class AbsValLayer(NeuronLayer):
    def layer_setup(self, bottom_shapes):
        # Caffe's AbsValLayer::LayerSetUp refuses in-place use (its backward reads the bottom).
        if self.spec.top and self.spec.bottom and self.spec.top[0] == self.spec.bottom[0]:
            raise self.error("AbsVal cannot compute in place (top and bottom are both "
                             f"'{self.spec.top[0]}')")
        return super().layer_setup(bottom_shapes)

    def forward(self, x):
        return (torch.abs(x),)
