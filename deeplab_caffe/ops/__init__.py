"""Python side of the custom ops: argument normalisation, autograd and fake (meta) kernels.

The kernels live in ``deeplab_caffe._C`` under ``torch.ops.deeplab_caffe``.
"""
from .conv import (col2im_hole, conv2d_hole, conv_output_size, conv_transpose2d_hole,  # noqa: F401
                   deconv_output_size, im2col_hole)
