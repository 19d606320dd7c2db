"""Histogram (DeepLab v1 HISTOGRAM): counts of each label value in a label map.

``histogram_param { num_labels (required, > 0) repeated ignore_label }``.  Bottom (N, 1, H, W)
integer-valued; top (N, num_labels, 1, 1).  As the C++: a non-integer value is an error; the
ignore labels are skipped; any other value outside [0, num_labels) is an error.  Quirk kept from
the C++: it writes every image's counts into the first row (its ``top_data`` is not offset by
the image), so row 0 holds the whole batch's counts and the other rows stay 0.  No gradient.
"""
import torch

from ._grad import detached
from ._params import require_4d, required
from .base import Layer, register


@register("Histogram")
class HistogramLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.num_labels = int(required(self, "histogram_param", "num_labels"))
        if self.num_labels <= 0:
            raise self.error(f"num_labels must be positive, got {self.num_labels}")
        self.ignore = sorted({int(v) for v in self.param("histogram_param").getlist(
            "ignore_label")})

    def _check(self, shape):
        require_4d(self, shape)
        if shape[1] != 1:
            raise self.error(f"the input must have a single channel, got shape {shape}")

    def layer_setup(self, bottom_shapes):
        self._check(tuple(bottom_shapes[0]))
        return [(bottom_shapes[0][0], self.num_labels, 1, 1)]

    @torch.no_grad()
    def forward(self, x):
        self._check(tuple(x.shape))
        v = x.reshape(-1)
        lab = torch.trunc(v)
        if bool((lab != v).any()):
            raise self.error(f"input assumed integer-valued, got {float(v[lab != v][0])}")
        lab = lab.to(torch.int64)
        keep = torch.ones_like(lab, dtype=torch.bool)
        for ig in self.ignore:
            keep &= lab != ig
        bad = keep & ((lab < 0) | (lab >= self.num_labels))
        if bool(bad.any()):
            raise self.error(f"unexpected label {int(lab[bad][0])} (num_labels "
                             f"{self.num_labels})")
        out = torch.zeros(x.shape[0], self.num_labels, 1, 1, dtype=x.dtype, device=x.device)
        out[0, :, 0, 0] = torch.bincount(lab[keep], minlength=self.num_labels).to(x.dtype)
        return detached(out)
