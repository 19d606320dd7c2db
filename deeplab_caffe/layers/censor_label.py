"""CensorLabel (DeepLab v1 CENSOR_LABEL): sets to ignore_label the pixels of a label map whose
label is not in the image's weak label set.

``censor_label_param { ignore_label (required) }``.  Bottoms: label map (N, 1, H, W) and label
list (N, L, 1, 1) (entries -1 are fillers).  Top (N, 1, H, W): the label where it is one of the
image's listed labels (exact float comparison, as the C++), else ignore_label.  No gradient
(Caffe's Backward does nothing).
"""
import torch

from ._grad import detached
from ._params import require_4d, required
from .base import Layer, register


@register("CensorLabel")
class CensorLabelLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.ignore_label = int(required(self, "censor_label_param", "ignore_label"))

    def _check(self, shape, lshape):
        require_4d(self, shape, "label map bottom")
        require_4d(self, lshape, "label list bottom")
        if shape[1] != 1:
            raise self.error(f"the label map must have one channel, got shape {shape}")
        if lshape[0] != shape[0] or lshape[2:] != (1, 1):
            raise self.error(f"the label list must be ({shape[0]}, L, 1, 1), got {lshape}")

    def layer_setup(self, bottom_shapes):
        self._check(tuple(bottom_shapes[0]), tuple(bottom_shapes[1]))
        return [tuple(bottom_shapes[0])]

    @torch.no_grad()
    def forward(self, label_map, labels):
        self._check(tuple(label_map.shape), tuple(labels.shape))
        n = label_map.shape[0]
        flat = labels.reshape(n, -1, 1, 1, 1)            # (N, L) against every pixel
        listed = ((label_map[:, None] == flat) & (flat != -1)).any(1)
        out = torch.where(listed, label_map,
                          torch.full_like(label_map, float(self.ignore_label)))
        return detached(out)
