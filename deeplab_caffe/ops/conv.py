"""Hole (atrous) im2col / col2im and the Caffe convolution built on them.

Semantics are DeepLab v1's (and Caffe's ``dilation``): per axis
``extent = hole * (kernel - 1) + 1`` and ``out = (in + 2 * pad - extent) // stride + 1``; taps that
fall outside the image read 0.  Every size argument takes an int or an ``(h, w)`` pair.
"""
import torch

from .. import _C  # noqa: F401  (registers torch.ops.deeplab_caffe)

_ops = torch.ops.deeplab_caffe


def _pair(value, name, minimum):
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int or an (h, w) pair of ints, got {value!r}")
    if isinstance(value, int):
        pair = (value, value)
    else:
        try:
            pair = tuple(value)
        except TypeError:
            raise ValueError(f"{name} must be an int or an (h, w) pair of ints, got {value!r}") \
                from None
        if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
            raise ValueError(f"{name} must be an int or an (h, w) pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return list(pair)


def _tensor(t, name):
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def conv_output_size(size, kernel, pad=0, stride=1, hole=1):
    """Caffe's convolution output size (out_h, out_w) for input size (H, W)."""
    size = _pair(size, "size", 0)
    k, p, s, d = (_pair(kernel, "kernel", 1), _pair(pad, "pad", 0), _pair(stride, "stride", 1),
                  _pair(hole, "hole", 1))
    out = []
    for a in range(2):
        extent = d[a] * (k[a] - 1) + 1
        if size[a] + 2 * p[a] < extent:
            raise ValueError(f"kernel extent {extent} is larger than the padded input "
                             f"({size[a]} + 2*{p[a]})")
        out.append((size[a] + 2 * p[a] - extent) // s[a] + 1)
    return tuple(out)


def im2col_hole(x, kernel, pad=0, stride=1, hole=1):
    """Columns of ``x`` (N, C, H, W) -> (N, C*kh*kw, out_h*out_w), rows in Caffe's order
    (channel, kernel row, kernel column); differentiable (its gradient is col2im_hole)."""
    return _ops.im2col_hole(_tensor(x, "x"), _pair(kernel, "kernel", 1), _pair(pad, "pad", 0),
                            _pair(stride, "stride", 1), _pair(hole, "hole", 1))


def col2im_hole(cols, size, kernel, pad=0, stride=1, hole=1):
    """Adjoint of im2col_hole: (N, C*kh*kw, out_h*out_w) -> (N, C, H, W) with size = (H, W);
    overlapping taps are summed."""
    return _ops.col2im_hole(_tensor(cols, "cols"), _pair(size, "size", 0),
                            _pair(kernel, "kernel", 1), _pair(pad, "pad", 0),
                            _pair(stride, "stride", 1), _pair(hole, "hole", 1))


def conv2d_hole(x, weight, bias=None, stride=1, pad=0, hole=1, group=1):
    """Caffe ConvolutionLayer: x (N, C, H, W), weight (num_output, C/group, kh, kw), bias
    (num_output,) or None -> (N, num_output, out_h, out_w).  Forward is hole im2col + GEMM,
    backward GEMM + col2im (1x1 / stride 1 / pad 0 skips im2col, as Caffe does)."""
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise ValueError(f"group must be a positive int, got {group!r}")
    if bias is not None:
        _tensor(bias, "bias")
    return _ops.conv2d_hole(_tensor(x, "x"), _tensor(weight, "weight"), bias,
                            _pair(stride, "stride", 1), _pair(pad, "pad", 0),
                            _pair(hole, "hole", 1), group)


def deconv_output_size(size, kernel, pad=0, stride=1, hole=1):
    """Caffe's DeconvolutionLayer output size: per axis stride * (in - 1) + extent - 2 * pad,
    extent = hole * (kernel - 1) + 1 (the input size of the convolution it is the adjoint of)."""
    size = _pair(size, "size", 0)
    k, p, s, d = (_pair(kernel, "kernel", 1), _pair(pad, "pad", 0), _pair(stride, "stride", 1),
                  _pair(hole, "hole", 1))
    out = tuple(s[a] * (size[a] - 1) + d[a] * (k[a] - 1) + 1 - 2 * p[a] for a in range(2))
    if min(out) < 1:
        raise ValueError(f"output size {out[0]}x{out[1]} is not positive (input "
                         f"{size[0]}x{size[1]}, pad {p} too large for kernel {k})")
    return out


class _ConvTransposeHole(torch.autograd.Function):
    """Caffe's DeconvolutionLayer on the hole kernels: its forward is the convolution's
    backward-data (GEMM + col2im), its input gradient the convolution's forward (im2col + GEMM)
    and its weight gradient the convolution's weight gradient with the roles of top and bottom
    swapped, as deconv_layer.cpp composes them."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, pad, hole, group):
        size = deconv_output_size(tuple(x.shape[2:]), tuple(weight.shape[2:]), pad, stride, hole)
        # Only the shape of the convolution's input is read when just its gradient is asked.
        shape_of_top = x.new_empty((x.shape[0], weight.shape[1] * group) + size)
        y = _ops.conv2d_hole_backward(x, shape_of_top, weight, stride, pad, hole, group,
                                      [True, False, False])[0]
        if bias is not None:
            y = y + bias.view(1, -1, 1, 1)
        ctx.save_for_backward(x, weight)
        ctx.geom = (stride, pad, hole, group)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        stride, pad, hole, group = ctx.geom
        gy = gy.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _ops.conv2d_hole(gy, weight, None, stride, pad, hole, group)
        if ctx.needs_input_grad[1]:
            gw = _ops.conv2d_hole_backward(x.contiguous(), gy, weight, stride, pad, hole, group,
                                           [False, True, False])[1]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy.sum((0, 2, 3))
        return gx, gw, gb, None, None, None, None


def conv_transpose2d_hole(x, weight, bias=None, stride=1, pad=0, hole=1, group=1):
    """Caffe DeconvolutionLayer: x (N, C, H, W), weight (C, num_output/group, kh, kw) (Caffe's
    layout, the same as torch's conv_transpose2d), bias (num_output,) or None ->
    (N, num_output, out_h, out_w), out as deconv_output_size."""
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise ValueError(f"group must be a positive int, got {group!r}")
    _tensor(x, "x")
    _tensor(weight, "weight")
    if bias is not None:
        _tensor(bias, "bias")
    if x.dim() != 4 or weight.dim() != 4 or x.shape[1] != weight.shape[0]:
        raise ValueError(f"x {tuple(x.shape)} and weight {tuple(weight.shape)} do not fit: "
                         f"the weight is (C_in, C_out/group, kh, kw)")
    return _ConvTransposeHole.apply(x, weight, bias, _pair(stride, "stride", 1),
                                    _pair(pad, "pad", 0), _pair(hole, "hole", 1), group)


# ---- autograd -----------------------------------------------------------------------------------

def _conv_setup(ctx, inputs, output):
    x, weight, bias, stride, pad, hole, group = inputs
    ctx.save_for_backward(x, weight)
    ctx.geom = (stride, pad, hole, group)
    ctx.has_bias = bias is not None


def _conv_backward(ctx, grad_out):
    x, weight = ctx.saved_tensors
    stride, pad, hole, group = ctx.geom
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1],
            ctx.has_bias and ctx.needs_input_grad[2]]
    gx, gw, gb = _ops.conv2d_hole_backward(grad_out, x, weight, stride, pad, hole, group, mask)
    return (gx if mask[0] else None, gw if mask[1] else None, gb if mask[2] else None,
            None, None, None, None)


def _im2col_setup(ctx, inputs, output):
    x, kernel, pad, stride, hole = inputs
    ctx.args = (list(x.shape[2:]), kernel, pad, stride, hole)


def _im2col_backward(ctx, grad):
    size, kernel, pad, stride, hole = ctx.args
    return _ops.col2im_hole(grad, size, kernel, pad, stride, hole), None, None, None, None


def _col2im_setup(ctx, inputs, output):
    cols, size, kernel, pad, stride, hole = inputs
    ctx.args = (kernel, pad, stride, hole)


def _col2im_backward(ctx, grad):
    kernel, pad, stride, hole = ctx.args
    return _ops.im2col_hole(grad, kernel, pad, stride, hole), None, None, None, None, None


torch.library.register_autograd("deeplab_caffe::conv2d_hole", _conv_backward,
                                setup_context=_conv_setup)
torch.library.register_autograd("deeplab_caffe::im2col_hole", _im2col_backward,
                                setup_context=_im2col_setup)
torch.library.register_autograd("deeplab_caffe::col2im_hole", _col2im_backward,
                                setup_context=_col2im_setup)


# ---- fake kernels (shape inference for meta tensors and torch.compile) ---------------------------

@torch.library.register_fake("deeplab_caffe::im2col_hole")
def _im2col_fake(x, kernel, pad, stride, hole):
    oh, ow = conv_output_size(tuple(x.shape[2:]), kernel, pad, stride, hole)
    return x.new_empty((x.shape[0], x.shape[1] * kernel[0] * kernel[1], oh * ow))


@torch.library.register_fake("deeplab_caffe::col2im_hole")
def _col2im_fake(cols, size, kernel, pad, stride, hole):
    return cols.new_empty((cols.shape[0], cols.shape[1] // (kernel[0] * kernel[1]),
                           size[0], size[1]))


@torch.library.register_fake("deeplab_caffe::conv2d_hole")
def _conv_fake(x, weight, bias, stride, pad, hole, group):
    oh, ow = conv_output_size(tuple(x.shape[2:]), tuple(weight.shape[2:]), pad, stride, hole)
    return x.new_empty((x.shape[0], weight.shape[0], oh, ow))


@torch.library.register_fake("deeplab_caffe::conv2d_hole_backward")
def _conv_backward_fake(grad_out, x, weight, stride, pad, hole, group, output_mask):
    return (x.new_empty(x.shape), weight.new_empty(weight.shape),
            weight.new_empty((weight.shape[0],)))
