"""IgnoreOverlay (DeepLab v1 IGNORE_OVERLAY): bottom 1, except where bottom 0 holds the
ignore label, which is copied over.

``ignore_overlay_param { ignore_label }`` (optional without a default: unset means 0, as the
C++ reads it).  Both bottoms (N, C, H, W) of the same shape; bottom 0's values are truncated to
int before the comparison, as the C++.  No gradient (Caffe's Backward is empty).
"""
import torch

from ._grad import detached
from ._params import require_4d, scalar
from .base import Layer, register


@register("IgnoreOverlay")
class IgnoreOverlayLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.ignore_label = int(scalar(self.param("ignore_overlay_param"), "ignore_label", 0))

    def _check(self, s0, s1):
        require_4d(self, s0, "bottom 0")
        require_4d(self, s1, "bottom 1")
        if s0 != s1:
            raise self.error(f"incompatible inputs: shapes {s0} and {s1} must be equal")

    def layer_setup(self, bottom_shapes):
        self._check(tuple(bottom_shapes[0]), tuple(bottom_shapes[1]))
        return [tuple(bottom_shapes[1])]

    @torch.no_grad()
    def forward(self, overlay, x):
        self._check(tuple(overlay.shape), tuple(x.shape))
        hit = torch.trunc(overlay) == self.ignore_label
        return detached(torch.where(hit, torch.full_like(x, float(self.ignore_label)), x))
