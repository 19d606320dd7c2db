"""Crop: bottom 0 cut to the shape of bottom 1 on the axes from ``crop_param { axis (2) }`` on.

``offset``: none = 0 on every cropped axis, one = the same for all, else exactly one per cropped
axis.  Axes before ``axis`` are kept whole.  Every cropped axis needs
bottom0 - offset >= bottom1 (crop_layer.cpp's Reshape).  Backward: bottom 0 gets the top's
gradient at the cropped window, zero elsewhere; bottom 1 only lends its shape and gets none.
"""
from ._params import canonical_axis, scalar
from .base import Layer, register


@register("Crop")
class CropLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("crop_param")
        self.axis = int(scalar(p, "axis", 2))
        self.offset = [int(v) for v in p.getlist("offset")]

    def _window(self, data, like):
        """(offsets, top shape) for bottoms of shapes ``data`` and ``like``."""
        start = canonical_axis(self, self.axis, len(data))
        if len(self.offset) > 1 and start + len(self.offset) != len(data):
            raise self.error(f"crop_param has {len(self.offset)} offsets; axis {start} of a "
                             f"{len(data)}-axis bottom needs one per axis from it on "
                             f"({len(data) - start})")
        if len(like) < len(data):
            raise self.error(f"bottom 1 has {len(like)} axes; cropping the {len(data)}-axis "
                             f"bottom 0 needs its sizes for axes {start}..{len(data) - 1}")
        offsets, shape = [0] * len(data), list(data)
        for i in range(start, len(data)):
            off = self.offset[0] if len(self.offset) == 1 else (
                self.offset[i - start] if self.offset else 0)
            if data[i] - off < like[i]:
                raise self.error(f"the crop for axis {i} is out of bounds: size {like[i]} at "
                                 f"offset {off} in {data[i]}")
            offsets[i], shape[i] = off, like[i]
        return offsets, tuple(shape)

    def layer_setup(self, bottom_shapes):
        return [self._window(tuple(bottom_shapes[0]), tuple(bottom_shapes[1]))[1]]

    def forward(self, x, like):
        offsets, shape = self._window(tuple(x.shape), tuple(like.shape))
        for axis, (off, size) in enumerate(zip(offsets, shape)):
            if size != x.shape[axis]:
                x = x.narrow(axis, off, size)
        return (x,)
