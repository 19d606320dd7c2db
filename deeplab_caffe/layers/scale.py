"""Scale: top = bottom[0] * s (+ b with ``bias_term``), s broadcast over bottom[0]'s axes
[axis, axis + s's axes) as Bias's b is.

s is bottom[1] when given, else a learned blob (shape from axis / num_axes, ``filler`` default
constant 1).  The bias is always a learned blob, the last one: Caffe makes it with a Bias layer
over bottom[0] whose num_axes is bottom[1]'s number of axes when s is a bottom, else num_axes;
``bias_filler`` defaults to constant 0.
"""
from ..proto.message import Message
from ._params import scalar
from .base import Layer, register
from .bias import broadcast_view, learned_blob_shape


@register("Scale")
class ScaleLayer(Layer):
    """1 or 2 bottoms -> 1 top shaped as bottom[0]."""
    min_num_bottom = 1
    max_num_bottom = 2
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("scale_param")
        self.axis = int(scalar(p, "axis", 1))
        self.num_axes = int(scalar(p, "num_axes", 1))
        self.bias_term = bool(scalar(p, "bias_term", False))

    def layer_setup(self, bottom_shapes):
        p = self.param("scale_param")
        x_shape = tuple(bottom_shapes[0])
        if len(bottom_shapes) == 1:
            shape = learned_blob_shape(self, "scale_param", "scale", x_shape, self.axis,
                                       self.num_axes)
            filler = p.get("filler") or Message("FillerParameter", {"type": "constant",
                                                                    "value": 1.0})
            self.blobs.append(self.filled_blob(shape, Message("ScaleParameter",
                                                              {"filler": filler}), "filler"))
        operand = bottom_shapes[1] if len(bottom_shapes) > 1 else self.blobs[0].shape
        broadcast_view(self, "scale", x_shape, operand, self.axis)
        if self.bias_term:
            bias_axes = len(bottom_shapes[1]) if len(bottom_shapes) > 1 else self.num_axes
            shape = learned_blob_shape(self, "scale_param", "bias", x_shape, self.axis,
                                       bias_axes)
            self.blobs.append(self.filled_blob(shape, p, "bias_filler"))
        return [x_shape]

    def forward(self, x, *s):
        scale = s[0] if s else self.blobs[0].to(x.dtype)
        top = x * scale.reshape(broadcast_view(self, "scale", x.shape, scale.shape, self.axis))
        if self.bias_term:
            bias = self.blobs[-1].to(x.dtype)
            top = top + bias.reshape(broadcast_view(self, "bias", x.shape, bias.shape,
                                                    self.axis))
        return (top,)
