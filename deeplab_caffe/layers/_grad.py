"""How a layer's outputs take part in the backward when Caffe's layer has no real gradient.

Two Caffe behaviours, both with DeepLab v1's weak-supervision layers:
  * an empty Backward_cpu (ArgMax in the fork, AdaptiveBiasChannel, Histogram ...): the bottom's
    diff is left alone, so nothing flows back through the layer: ``detached``;
  * ``LOG(FATAL)`` / ``NOT_IMPLEMENTED`` when propagate_down is set (UniqueLabel, OneHot,
    RelativeError, BiasChannel's label bottom): ``refuse_backward`` makes a backward that
    reaches such a bottom raise a CaffeError naming the layer, instead of silently giving zero.
"""
import torch

from ..errors import NetError


def detached(*tensors):
    """The outputs of a layer whose Caffe backward does nothing."""
    return tuple(t.detach() for t in tensors)


class _Refuse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, message, out, *inputs):
        ctx.message = message
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad):
        raise NetError(ctx.message[1], layer=ctx.message[0], where=ctx.message[2])


def refuse_backward(layer, out, bottoms, why):
    """``out`` (computed without a graph) tied to ``bottoms``: a backward that reaches it raises
    ``why`` for ``layer``, as Caffe's LOG(FATAL) in Backward_cpu; bottoms that need no gradient
    leave ``out`` a plain tensor."""
    out = out.detach()
    needs = [b for b in bottoms if isinstance(b, torch.Tensor) and b.requires_grad]
    if not needs or not torch.is_grad_enabled():
        return out
    return _Refuse.apply((layer.name, f"{layer.type_name}: {why}", layer.spec.where), out, *needs)
