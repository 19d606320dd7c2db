"""Embed: ``embed_param { num_output input_dim bias_term (true) weight_filler bias_filler }``.

Each bottom value is an index in [0, input_dim) (truncated toward zero, as static_cast<int>);
top = bottom shape + (num_output,), the weight row of that index plus the bias.  Blobs: weight
(input_dim, num_output), bias (num_output,).  No gradient reaches the bottom: a backward that
needs one is an error (Caffe's "Can't backpropagate to EmbedLayer input").
"""
import torch

from ._grad import refuse_backward
from ._params import required, scalar
from .base import Layer, register


@register("Embed")
class EmbedLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.p = self.param("embed_param")
        self.num_output = int(required(self, "embed_param", "num_output"))
        self.input_dim = int(required(self, "embed_param", "input_dim"))
        self.bias_term = bool(scalar(self.p, "bias_term", True))
        for name in ("num_output", "input_dim"):
            if getattr(self, name) < 1:
                raise self.error(f"{name} must be positive, got {getattr(self, name)}")

    def layer_setup(self, bottom_shapes):
        if len(self.blobs) == 0:
            self.blobs.append(self.filled_blob((self.input_dim, self.num_output), self.p,
                                               "weight_filler"))
            if self.bias_term:
                self.blobs.append(self.filled_blob((self.num_output,), self.p, "bias_filler"))
        return [tuple(bottom_shapes[0]) + (self.num_output,)]

    def forward(self, x):
        index = x.detach().to(torch.int64)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.input_dim):
            bad = index[(index < 0) | (index >= self.input_dim)][0]
            raise self.error(f"embed index {int(bad)} out of range [0, {self.input_dim})")
        y = self.blobs[0][index]
        if self.bias_term:
            y = y + self.blobs[1]
        if x.requires_grad and torch.is_grad_enabled():
            y = refuse_backward(self, y, [x], "can't backpropagate to the Embed input")
        return (y,)
