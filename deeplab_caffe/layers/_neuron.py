"""Shared by Caffe's NeuronLayer types (one bottom, one top of the same shape, in place allowed):
the layer base and an autograd Function that runs Caffe's own Backward_cpu formula.

Caffe's backward of these layers is a closed form in the bottom, the top and the top's diff,
which at kinks and in rounding is not always the derivative autograd would take of the forward
(Power's y/x at x = 0, MVN's eps, Sigmoid's y(1-y)); ``caffe_backward`` makes the backward that
formula exactly.
"""
import torch

from .base import Layer


class _CaffeBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, forward_fn, backward_fn):
        y = forward_fn(x)
        ctx.save_for_backward(x, y)
        ctx.backward_fn = backward_fn
        return y

    @staticmethod
    def backward(ctx, top_diff):
        x, y = ctx.saved_tensors
        return ctx.backward_fn(x, y, top_diff), None, None


def caffe_backward(x, forward_fn, backward_fn):
    """``forward_fn(x)``, with ``backward_fn(bottom, top, top_diff) -> bottom_diff`` as its
    gradient (Caffe's Backward_cpu); no graph is kept when ``x`` needs no gradient."""
    if not (x.requires_grad and torch.is_grad_enabled()):
        return forward_fn(x)
    return _CaffeBackward.apply(x, forward_fn, backward_fn)


class NeuronLayer(Layer):
    """Caffe's NeuronLayer: exactly one bottom and one top, the top shaped as the bottom."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom_shapes):
        return [tuple(bottom_shapes[0])]
