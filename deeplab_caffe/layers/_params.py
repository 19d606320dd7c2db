"""Small helpers the layer modules share to read ``*_param`` messages and check shapes.

Messages come from the text parser or the wire decoder (see ``proto/message.py``).  A singular
field written twice in a prototxt may arrive as a list: protobuf keeps the last value, so do we.
Enum fields arrive as value names ("MAX"); an integer is mapped through the enum's name list so a
hand-built message with numbers works too.
"""
import math


def scalar(msg, name, default=None):
    """A singular field's value, ``default`` when absent (last one wins if written twice)."""
    v = msg.get(name)
    if v is None:
        return default
    if isinstance(v, list):
        return v[-1]
    return v


def enum_name(layer, msg, name, default, names):
    """An enum field as its value name; ``names`` lists the enum's names by value (0, 1, ...)."""
    v = scalar(msg, name, default)
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise layer.error(f"{name}: expected one of {', '.join(names)}, got {v!r}")
    if isinstance(v, int):
        if not 0 <= v < len(names):
            raise layer.error(f"{name}: enum value {v} is not one of {', '.join(names)}")
        return names[v]
    if v not in names:
        raise layer.error(f"{name}: '{v}' is not one of {', '.join(names)}")
    return v


def canonical_axis(layer, axis, num_axes, what="axis"):
    """Caffe's CanonicalAxisIndex: -num_axes <= axis < num_axes, negatives count from the end."""
    if not -num_axes <= axis < num_axes:
        raise layer.error(f"{what} {axis} out of range for a {num_axes}-axis blob")
    return axis + num_axes if axis < 0 else axis


def count(shape, start=0, end=None):
    """Product of ``shape[start:end]`` (1 for an empty range), like Blob::count(start, end)."""
    return math.prod(shape[start:end])


def require_4d(layer, shape, what="bottom"):
    if len(shape) != 4:
        raise layer.error(f"{layer.type_name} needs a 4-axis (N, C, H, W) {what}, got shape "
                          f"{tuple(shape)}")


def flt_min():
    """Caffe's FLT_MIN (smallest normal float32), used whatever the Dtype."""
    return 1.1754943508222875e-38


FLT_MAX = 3.4028234663852886e+38


def required(layer, param_name, name):
    """A field of ``layer``'s ``param_name`` message that the C++ reads unconditionally (a
    proto ``required`` field, or one without a usable default): its value, or an error."""
    msg = layer.param(param_name)
    if not msg.has(name):
        raise layer.error(f"{layer.type_name} needs {param_name} {{ {name} }}")
    return scalar(msg, name)
