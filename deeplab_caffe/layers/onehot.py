"""OneHot (DeepLab v1 ONEHOT): label indices to a one-hot (multi-hot) map.

``onehot_param { num_labels (required, >= 1) }``; num_labels may not exceed the bottom's channel
count (the C++'s check, whatever the reason).  Bottom (N, C, H, W) holds C labels per pixel
(e.g. DominantChannel's or ArgMax's top_k); top (N, num_labels, H, W) is 1 at each listed label,
0 elsewhere.  Labels are truncated to int and must be in [-1, num_labels).  Difference from the
C++: a label -1 sets nothing here; the C++ writes it one channel plane before channel 0 (the
previous image's last channel, or before the buffer for image 0).  No backward: one that reaches
the bottom is an error (Caffe's NOT_IMPLEMENTED).
"""
import torch

from ._grad import refuse_backward
from ._params import require_4d, required
from .base import Layer, register


@register("OneHot")
class OneHotLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.num_labels = int(required(self, "onehot_param", "num_labels"))
        if self.num_labels < 1:
            raise self.error(f"num_labels must be at least 1, got {self.num_labels}")

    def _check(self, shape):
        require_4d(self, shape)
        if self.num_labels > shape[1]:
            raise self.error(f"num_labels {self.num_labels} must be less than or equal to the "
                             f"number of channels ({shape[1]})")

    def layer_setup(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        self._check(s)
        return [(s[0], self.num_labels, s[2], s[3])]

    def forward(self, x):
        self._check(tuple(x.shape))
        with torch.no_grad():
            lab = torch.trunc(x).to(torch.int64)
            bad = (lab < -1) | (lab >= self.num_labels)
            if bool(bad.any()):
                raise self.error(f"label {int(lab[bad][0])} out of range [-1, "
                                 f"{self.num_labels})")
            n, _, h, w = x.shape
            out = torch.zeros(n, self.num_labels + 1, h, w, dtype=x.dtype, device=x.device)
            out.scatter_(1, lab + 1, 1.0)        # -1 lands in the extra first plane
            out = out[:, 1:].contiguous()
        return (refuse_backward(self, out, [x], "backward is not implemented (Caffe's "
                                "NOT_IMPLEMENTED)"),)
