"""Filter: bottoms b_0 .. b_{k-1} and a selector (the last bottom, shape (N, 1, ...)): each top
i holds the items n of b_i whose selector value is non-zero, in order (filter_layer.cpp).

At set-up the tops have all N items (Caffe's first Reshape); each forward keeps the selected ones.
Backward: the selected items get the top's gradient, the others zero; the selector gets none (a
backward that needs one is an error, as Caffe's LOG(FATAL)).
"""
import torch

from ._grad import refuse_backward
from .base import Layer, register


@register("Filter")
class FilterLayer(Layer):
    min_num_bottom = 2
    min_num_top = 1

    def _check(self, shapes, num_top):
        if num_top != len(shapes) - 1:
            raise self.error(f"Filter takes one top per filtered bottom: {len(shapes) - 1} "
                             f"bottom(s) before the selector, {num_top} top(s)")
        sel = shapes[-1]
        if any(d != 1 for d in sel[1:]):
            raise self.error(f"selector shape {tuple(sel)}: every axis but the first must be 1")
        for s in shapes[:-1]:
            if not s or s[0] != sel[0]:
                raise self.error(f"bottom shape {tuple(s)}: every bottom needs the selector's "
                                 f"first dimension {sel[0]}")

    def layer_setup(self, bottom_shapes):
        shapes = [tuple(s) for s in bottom_shapes]
        self._check(shapes, self.num_top)
        return list(shapes[:-1])

    def forward(self, *bottoms):
        *data, selector = bottoms
        self._check([tuple(b.shape) for b in bottoms], self.num_top)
        keep = torch.nonzero(selector.detach().reshape(-1) != 0).reshape(-1)
        tops = tuple(b.index_select(0, keep) for b in data)
        if selector.requires_grad and torch.is_grad_enabled():
            tops = tuple(refuse_backward(self, t, [selector], "cannot backpropagate to the "
                                         "selector (its last bottom)") for t in tops)
        return tops
