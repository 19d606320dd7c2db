"""Silence: consumes its bottoms so they are not net outputs; no tops, no gradient."""
from .base import Layer, register


@register("Silence")
class SilenceLayer(Layer):
    min_num_bottom = 1
    exact_num_top = 0

    def layer_setup(self, bottom_shapes):
        return []

    def forward(self, *bottoms):
        return ()
