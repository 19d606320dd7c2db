"""Bias: top = bottom[0] + b, b broadcast over bottom[0]'s axes [axis, axis + b's axes).

b is bottom[1] when given, else a learned blob of shape bottom[0].shape[axis : axis + num_axes]
(num_axes -1: to the end; 0: a scalar), filled by ``filler`` (default constant 0).  A 0-axis b
applies at axis 0 whatever ``axis`` says.  Scale's ``bias_term`` reuses these rules.
"""
from ._params import canonical_axis, scalar
from .base import Layer, register


def learned_blob_shape(layer, param_name, what, bottom_shape, axis, num_axes):
    """Caffe's {Bias,Scale}Layer::LayerSetUp with one bottom: the learned blob's shape."""
    axis = canonical_axis(layer, axis, len(bottom_shape))
    if num_axes < -1:
        raise layer.error(f"{param_name} num_axes must be non-negative, or -1 to extend to the "
                          f"end of bottom[0]; got {num_axes}")
    if num_axes >= 0 and len(bottom_shape) < axis + num_axes:
        raise layer.error(f"{what} blob's shape extends past bottom[0]'s shape "
                          f"{tuple(bottom_shape)} when applied starting with bottom[0] axis = "
                          f"{axis} (num_axes {num_axes})")
    end = len(bottom_shape) if num_axes == -1 else axis + num_axes
    return tuple(bottom_shape[axis:end])


def broadcast_view(layer, what, bottom_shape, operand_shape, axis):
    """Caffe's {Bias,Scale}Layer::Reshape: the shape to view the operand in so that it
    broadcasts over ``bottom_shape`` from ``axis`` (axis 0 for a 0-axis operand)."""
    bottom_shape, operand_shape = tuple(bottom_shape), tuple(operand_shape)
    axis = 0 if not operand_shape else canonical_axis(layer, axis, len(bottom_shape))
    if len(bottom_shape) < axis + len(operand_shape):
        raise layer.error(f"{what} of shape {operand_shape} extends past bottom[0]'s shape "
                          f"{bottom_shape} when applied starting with bottom[0] axis = {axis}")
    for i, d in enumerate(operand_shape):
        if bottom_shape[axis + i] != d:
            raise layer.error(f"dimension mismatch between bottom[0]->shape({axis + i}) = "
                              f"{bottom_shape[axis + i]} and {what}->shape({i}) = {d}")
    return (1,) * axis + operand_shape + (1,) * (len(bottom_shape) - axis - len(operand_shape))


@register("Bias")
class BiasLayer(Layer):
    """1 or 2 bottoms -> 1 top shaped as bottom[0]."""
    min_num_bottom = 1
    max_num_bottom = 2
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("bias_param")
        self.axis = int(scalar(p, "axis", 1))
        self.num_axes = int(scalar(p, "num_axes", 1))

    def layer_setup(self, bottom_shapes):
        x_shape = tuple(bottom_shapes[0])
        if len(bottom_shapes) == 1:
            shape = learned_blob_shape(self, "bias_param", "bias", x_shape, self.axis,
                                       self.num_axes)
            self.blobs.append(self.filled_blob(shape, self.param("bias_param"), "filler"))
        operand = bottom_shapes[1] if len(bottom_shapes) > 1 else self.blobs[0].shape
        broadcast_view(self, "bias", x_shape, operand, self.axis)
        return [x_shape]

    def forward(self, x, *b):
        bias = b[0] if b else self.blobs[0].to(x.dtype)
        view = broadcast_view(self, "bias", x.shape, bias.shape, self.axis)
        return (x + bias.reshape(view),)
