"""Convolution with Caffe's ConvolutionLayer semantics, holes (DeepLab) / dilation (BVLC).

Blobs: weight (num_output, C/group, kernel_h, kernel_w), bias (num_output,) when bias_term.
Top (N, num_output, out_h, out_w) with out = (in + 2*pad - (dilation*(k-1)+1)) / stride + 1.
``engine`` (ConvolutionParameter): CAFFE runs our hole im2col + GEMM, CUDNN PyTorch's native
convolution, DEFAULT the faster of the two for the device and precision (ops/engine.py).
"""
import torch.nn.functional as F

from ..ops import conv2d_hole, conv_output_size
from ..ops.engine import pick_engine
from ._params import enum_name, require_4d, scalar
from .base import Layer, register


def _axis_values(layer, p, name, name_h, name_w, default):
    """Caffe's pad/kernel_size/stride rules: a repeated value (1 for both axes or 2 = h, w) or
    the _h/_w pair, never both."""
    values = [int(v) for v in p.getlist(name)]
    has_hw = p.has(name_h) or p.has(name_w)
    if has_hw:
        if values:
            raise layer.error(f"give either {name} or {name_h}/{name_w}, not both")
        if not (p.has(name_h) and p.has(name_w)):
            # BVLC master's BaseConvolutionLayer reads pad_h and pad_w with their default 0 when
            # either is given; DeepLab's 2015 fork, like old BVLC, requires both.
            if name != "pad" or layer.spec.dialect == "deeplab_v1":
                raise layer.error(f"{name_h} and {name_w} must be given together")
        return int(scalar(p, name_h, 0)), int(scalar(p, name_w, 0))
    if not values:
        if default is None:
            raise layer.error(f"convolution_param needs {name} (or {name_h} and {name_w})")
        return default, default
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise layer.error(f"{name} has {len(values)} values; a 2-D convolution takes 1 or 2")


def conv_geometry(layer, p):
    """(kernel, pad, stride, hole) pairs of a ConvolutionParameter, checked as
    BaseConvolutionLayer::LayerSetUp does (also Im2col's)."""
    kernel = _axis_values(layer, p, "kernel_size", "kernel_h", "kernel_w", None)
    pad = _axis_values(layer, p, "pad", "pad_h", "pad_w", 0)
    stride = _axis_values(layer, p, "stride", "stride_h", "stride_w", 1)
    hole = [int(v) for v in p.getlist("dilation")]
    if len(hole) > 2:
        raise layer.error(f"dilation has {len(hole)} values; a 2-D convolution takes 1 or 2")
    hole = (1, 1) if not hole else (hole[0], hole[-1])
    if int(scalar(p, "axis", 1)) != 1:
        raise layer.error("only axis: 1 (N, C, H, W) convolution is supported")
    for what, v, lo in (("kernel", kernel, 1), ("stride", stride, 1), ("pad", pad, 0),
                        ("dilation (hole)", hole, 1)):
        if min(v) < lo:
            raise layer.error(f"{what} must be >= {lo}, got {v}")
    return kernel, pad, stride, hole


@register("Convolution")
class ConvolutionLayer(Layer):
    min_num_bottom = 1
    min_num_top = 1
    equal_num_bottom_top = True

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.p = self.param("convolution_param")
        if not p.has("num_output"):
            raise self.error(f"{self.type_name} needs convolution_param {{ num_output }}")
        self.num_output = int(scalar(p, "num_output"))
        self.bias_term = bool(scalar(p, "bias_term", True))
        self.group = int(scalar(p, "group", 1))
        self.kernel, self.pad, self.stride, self.hole = conv_geometry(self, p)
        self.engine = enum_name(self, p, "engine", "DEFAULT", ["DEFAULT", "CAFFE", "CUDNN"])
        for what, v, lo in (("num_output", (self.num_output,), 1), ("group", (self.group,), 1)):
            if min(v) < lo:
                raise self.error(f"{what} must be >= {lo}, got {v if len(v) > 1 else v[0]}")
        if self.num_output % self.group:
            raise self.error(f"num_output {self.num_output} is not divisible by group "
                             f"{self.group}")

    # The four hooks Deconvolution (BaseConvolutionLayer's reverse_dimensions) overrides.
    def output_size(self, hw):
        return conv_output_size(hw, self.kernel, self.pad, self.stride, self.hole)

    def weight_shape(self, channels):
        return (self.num_output, channels // self.group) + tuple(self.kernel)

    def weight_input_channels(self, w):
        return w.shape[1] * self.group

    def convolve(self, x, w, b):
        if pick_engine(self.engine, x) == "CAFFE":
            return conv2d_hole(x, w, b, stride=self.stride, pad=self.pad, hole=self.hole,
                               group=self.group)
        return F.conv2d(x, w, b, stride=self.stride, padding=self.pad, dilation=self.hole,
                        groups=self.group)

    def layer_setup(self, bottom_shapes):
        tops = []
        channels = None
        for shape in bottom_shapes:
            require_4d(self, shape)
            if channels is not None and shape[1] != channels:
                raise self.error("all bottoms must have the same number of channels")
            channels = shape[1]
            if channels % self.group:
                raise self.error(f"input channels {channels} are not divisible by group "
                                 f"{self.group}")
            try:
                oh, ow = self.output_size(shape[2:])
            except ValueError as e:
                raise self.error(f"input {shape[2]}x{shape[3]}: {e}") from None
            tops.append((shape[0], self.num_output, oh, ow))
        if len(self.blobs) == 0:
            self.blobs.append(self.filled_blob(self.weight_shape(channels), self.p,
                                               "weight_filler"))
            if self.bias_term:
                self.blobs.append(self.filled_blob((self.num_output,), self.p, "bias_filler"))
        return tops

    def forward(self, *bottoms):
        w = self.blobs[0]
        b = self.blobs[1] if self.bias_term else None
        outs = []
        for x in bottoms:
            if x.dim() != 4 or x.shape[1] != self.weight_input_channels(w):
                raise self.error(f"input shape {tuple(x.shape)} does not fit the weights "
                                 f"{tuple(w.shape)} (group {self.group})")
            outs.append(self.convolve(x, w, b))
        return tuple(outs)
