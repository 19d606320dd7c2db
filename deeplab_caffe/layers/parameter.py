"""Parameter: no bottom; its one blob (``parameter_param { shape }``, zeros until weights are
loaded or a solver changes it) is the top, and the top's gradient is the blob's
(parameter_layer.hpp: the top shares the blob's data and diff)."""
import torch

from .base import Layer, register


@register("Parameter")
class ParameterLayer(Layer):
    exact_num_bottom = 0
    exact_num_top = 1

    def layer_setup(self, bottom_shapes):
        shape = self.param("parameter_param").get("shape")
        dims = tuple(int(d) for d in shape.getlist("dim")) if shape is not None else ()
        if any(d < 0 for d in dims):
            raise self.error(f"parameter_param shape {dims} has a negative dim")
        if len(self.blobs) == 0:
            self.blobs.append(torch.nn.Parameter(torch.zeros(dims)))
        return [dims]

    def forward(self):
        # A copy in the graph, so that a later in-place layer cannot write into the blob itself.
        return (self.blobs[0].clone(),)
