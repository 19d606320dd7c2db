"""Clip: top = max(min, min(x, max)) (so min > max gives min everywhere, as Caffe's
std::max(min, std::min(x, max))); the gradient passes where min <= x <= max, both ends
included."""
import torch

from ._neuron import NeuronLayer
from ._params import required
from .base import register


@register("Clip")
class ClipLayer(NeuronLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        # ClipParameter's min and max are proto2 ``required`` fields.
        self.min = float(required(self, "clip_param", "min"))
        self.max = float(required(self, "clip_param", "max"))

    def forward(self, x):
        with torch.no_grad():
            clipped = x.clamp(max=self.max).clamp(min=self.min)
        inside = (x >= self.min) & (x <= self.max)
        return (torch.where(inside, x, clipped),)
