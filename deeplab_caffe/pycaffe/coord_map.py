"""pycaffe's coord_map: how output coordinates of a NetSpec's tops map to input coordinates
(``x_in = a * x_out + b`` per spatial axis), for FCN-style cropping (``crop``).

A map is (axis, a, b): axis is the channel axis the spatial axes follow (None for layers that
keep coordinates); a and b are scalars or per-axis arrays.
"""
import numpy as np

from .net_spec import layers as L

PASS_THROUGH_LAYERS = {
    "AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN", "Exp",
    "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH", "Threshold", "Clip",
    "Swish"}


class UndefinedMapException(Exception):
    """The layer does not keep spatial coordinates (InnerProduct, ...)."""


class AxisMismatchException(Exception):
    """Two maps are over different axes."""


def conv_params(fn):
    """(axis, stride, effective kernel size, pad) of a Convolution / Deconvolution / Pooling /
    Im2col Function, from ``*_param`` or plain keywords."""
    params = fn.params.get("convolution_param", fn.params)
    params = fn.params.get("pooling_param", params)
    legacy = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"} & set(params)
    if legacy:
        raise AssertionError(f"coord_map does not support the legacy _h/_w parameters "
                             f"{sorted(legacy)}")
    ks = np.array(params["kernel_size"], ndmin=1)
    dilation = np.array(params.get("dilation", 1), ndmin=1)
    return (params.get("axis", 1), np.array(params.get("stride", 1), ndmin=1),
            (ks - 1) * dilation + 1, np.array(params.get("pad", 0), ndmin=1))


def crop_params(fn):
    params = fn.params.get("crop_param", fn.params)
    return params.get("axis", 2), np.array(params.get("offset", 0), ndmin=1)


def coord_map(fn):
    """The map from a Function's output coordinates to its input's."""
    if fn.type_name in ("Convolution", "Pooling", "Im2col"):
        axis, stride, ks, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (ks - 1) / 2) / stride
    if fn.type_name == "Deconvolution":
        axis, stride, ks, pad = conv_params(fn)
        return axis, stride, (ks - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if fn.type_name == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset
    raise UndefinedMapException(fn.type_name)


def compose(base_map, next_map):
    """The map of applying ``base_map`` then ``next_map``."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is None:
        ax = ax2
    elif ax2 is None or ax1 == ax2:
        ax = ax1
    else:
        raise AxisMismatchException(f"axes {ax1} and {ax2}")
    return ax, a1 * a2, a1 * b2 + b1


def inverse(coord_map_):
    ax, a, b = coord_map_
    return ax, 1 / a, -b / a


def _bottoms(top):
    # A Crop's second bottom only gives the shape: coordinates follow the first.
    return top.fn.inputs[:1] if top.fn.type_name == "Crop" else top.fn.inputs


def _ancestor_maps(top):
    """(ancestor top, map from its coordinates to ``top``'s), nearest first, for ``top`` and
    every spatially connected ancestor."""
    frontier = [(top, (None, 1, 0))]
    while frontier:
        t, m = frontier.pop(0)
        yield t, m
        try:
            step = coord_map(t.fn)
        except UndefinedMapException:
            continue
        frontier.extend((bottom, compose(m, step)) for bottom in _bottoms(t))


def coord_map_from_to(top_from, top_to):
    """The map from ``top_from``'s coordinates to ``top_to``'s through a common ancestor."""
    from_maps = dict(_ancestor_maps(top_from))
    for t, to_map in _ancestor_maps(top_to):
        if t in from_maps:
            return compose(to_map, inverse(from_maps[t]))
    raise RuntimeError("Could not compute map between tops; are they connected by spatial "
                       "layers?")


def crop(top_from, top_to):
    """A Crop layer that crops ``top_from`` to ``top_to`` (same scale, non-negative integer
    offsets)."""
    ax, a, b = coord_map_from_to(top_from, top_to)
    assert np.all(a == 1), f"scale mismatch on crop (a = {a})"
    assert np.all(b <= 0), f"cannot crop negative offset (b = {b})"
    assert np.all(np.round(b) == b), f"cannot crop noninteger offset (b = {b})"
    return L.Crop(top_from, top_to,
                  crop_param=dict(axis=ax + 1, offset=list(-np.round(b).astype(int))))
