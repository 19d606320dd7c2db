"""Split: hands its bottom to every top (Caffe inserts it where a blob feeds several layers);
the gradients of the tops are summed, which autograd does for a tensor used several times."""
from .base import Layer, register


@register("Split")
class SplitLayer(Layer):
    """One bottom -> K >= 1 tops, each the same tensor."""
    exact_num_bottom = 1
    min_num_top = 1

    def layer_setup(self, bottom_shapes):
        return [tuple(bottom_shapes[0])] * len(self.spec.top)

    def forward(self, x):
        return (x,) * len(self.spec.top)
