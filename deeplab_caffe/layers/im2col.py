"""Im2col: the columns a convolution of ``convolution_param``'s kernel / stride / pad / dilation
multiplies (im2col_layer.cpp): (N, C, H, W) -> (N, C * kh * kw, out_h, out_w), rows in Caffe's
(channel, kernel row, kernel column) order; backward is col2im (taps summed)."""
from ..ops import conv_output_size, im2col_hole
from ._params import require_4d
from .base import Layer, register
from .convolution import conv_geometry


@register("Im2col")
class Im2colLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.kernel, self.pad, self.stride, self.hole = conv_geometry(
            self, self.param("convolution_param"))

    def _top_shape(self, s):
        require_4d(self, s)
        try:
            oh, ow = conv_output_size(s[2:], self.kernel, self.pad, self.stride, self.hole)
        except ValueError as e:
            raise self.error(f"input {s[2]}x{s[3]}: {e}") from None
        return (s[0], s[1] * self.kernel[0] * self.kernel[1], oh, ow)

    def layer_setup(self, bottom_shapes):
        return [self._top_shape(tuple(bottom_shapes[0]))]

    def forward(self, x):
        shape = self._top_shape(tuple(x.shape))
        cols = im2col_hole(x, self.kernel, self.pad, self.stride, self.hole)
        return (cols.reshape(shape),)
