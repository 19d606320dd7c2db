"""Deconvolution with Caffe's DeconvolutionLayer semantics: the adjoint of Convolution.

``convolution_param`` as Convolution (num_output, kernel, stride, pad, dilation, group,
bias_term, fillers, engine).  Blobs: weight (C_in, num_output/group, kernel_h, kernel_w) (Caffe's
reverse_dimensions layout), bias (num_output,).  Top (N, num_output, out_h, out_w) with
out = stride * (in - 1) + dilation * (k - 1) + 1 - 2 * pad.  ``engine``: CAFFE runs our hole
col2im (the convolution's backward-data, as deconv_layer.cpp), CUDNN PyTorch's
conv_transpose2d, DEFAULT the faster one for the device (ops/engine.py).
"""
import torch.nn.functional as F

from ..ops import conv_transpose2d_hole, deconv_output_size
from ..ops.engine import pick_engine
from .base import register
from .convolution import ConvolutionLayer


@register("Deconvolution")
class DeconvolutionLayer(ConvolutionLayer):
    def output_size(self, hw):
        return deconv_output_size(hw, self.kernel, self.pad, self.stride, self.hole)

    def weight_shape(self, channels):
        return (channels, self.num_output // self.group) + tuple(self.kernel)

    def weight_input_channels(self, w):
        return w.shape[0]

    def convolve(self, x, w, b):
        if pick_engine(self.engine, x) == "CAFFE":
            return conv_transpose2d_hole(x, w, b, stride=self.stride, pad=self.pad,
                                         hole=self.hole, group=self.group)
        return F.conv_transpose2d(x, w, b, stride=self.stride, padding=self.pad,
                                  dilation=self.hole, groups=self.group)
