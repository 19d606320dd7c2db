"""Input: tops whose values the caller supplies."""
import torch

from .base import register
from .base_data import DataLayer, blob_shape


@register("Input")
class InputLayer(DataLayer):
    """Tops whose values the caller supplies (``net.forward(data=...)``).

    input_param.shape: one BlobShape per top, or one for all tops, or none (tops unshaped,
    reported as ()).  ``forward(*arrays)`` stores the given arrays (any shape, like a Caffe blob
    the user reshapes) and returns them; ``forward()`` returns what was stored last, zeros at
    first.
    """
    min_num_top = 1

    def layer_setup(self, bottom_shapes):
        shapes = [blob_shape(s) for s in self.param("input_param").getlist("shape")]
        num_top = len(self.spec.top)
        if len(shapes) not in (0, 1, num_top):
            raise self.error(f"input_param has {len(shapes)} shapes for {num_top} tops; give "
                             "one shape, or one per top")
        for s in shapes:
            if any(d < 0 for d in s):
                raise self.error(f"input_param shape {s} has a negative dimension")
        if not shapes:
            shapes = [()] * num_top
        elif len(shapes) == 1:
            shapes = shapes * num_top
        for i, s in enumerate(shapes):
            self._set_top_buffer(i, torch.zeros(s, dtype=torch.float32, device=self.device))
        return [tuple(s) for s in shapes]

    def forward(self, *arrays):
        num_top = len(self.spec.top)
        if arrays:
            if len(arrays) != num_top:
                raise self.error(f"Input takes {num_top} arrays ({', '.join(self.spec.top)}), "
                                 f"got {len(arrays)}")
            for i, a in enumerate(arrays):
                self._set_top_buffer(i, torch.as_tensor(a).to(self.device, torch.float32))
        return tuple(self._top_buffer(i) for i in range(num_top))
