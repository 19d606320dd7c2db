"""Tile: ``tile_param { axis (1) tiles }``: the blob from ``axis`` on repeated ``tiles`` times
along ``axis`` (tile_layer.cpp: for each outer index, the inner block copied tiles times)."""
from ._params import canonical_axis, required, scalar
from .base import Layer, register


@register("Tile")
class TileLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.tiles = int(required(self, "tile_param", "tiles"))
        if self.tiles < 1:
            raise self.error(f"tiles must be positive, got {self.tiles}")
        self.axis = int(scalar(self.param("tile_param"), "axis", 1))

    def layer_setup(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        a = canonical_axis(self, self.axis, len(s))
        return [s[:a] + (s[a] * self.tiles,) + s[a + 1:]]

    def forward(self, x):
        a = canonical_axis(self, self.axis, x.dim())
        reps = [1] * x.dim()
        reps[a] = self.tiles
        return (x.repeat(*reps),)
