"""BatchReindex: top[i] = data[permut[i]] for a 1-axis index bottom ``permut``
(batch_reindex_layer.cpp); top (len(permut),) + data.shape[1:].  Backward: each data item gets
the sum of the gradients of the top items that read it; the index gets none (a backward that
needs one is an error, Caffe's "Cannot backprop to index")."""
import torch

from ._grad import refuse_backward
from .base import Layer, register


@register("BatchReindex")
class BatchReindexLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def _top_shape(self, data, permut):
        if len(permut) != 1:
            raise self.error(f"the index bottom must have 1 axis, got shape {tuple(permut)}")
        return (permut[0],) + tuple(data[1:])

    def layer_setup(self, bottom_shapes):
        return [self._top_shape(tuple(bottom_shapes[0]), tuple(bottom_shapes[1]))]

    def forward(self, data, permut):
        self._top_shape(tuple(data.shape), tuple(permut.shape))
        index = permut.detach().to(torch.int64)
        bad = (index < 0) | (index >= data.shape[0])
        if bool(bad.any()):
            raise self.error(f"index {int(index[bad][0])} out of range [0, {data.shape[0]})")
        top = data.index_select(0, index)
        if permut.requires_grad and torch.is_grad_enabled():
            top = refuse_backward(self, top, [permut], "cannot backprop to the index")
        return (top,)
