"""UniqueLabel (DeepLab v1 UNIQUE_LABEL): the set of labels present in each image of a label map.

``unique_label_param { max_labels (required) repeated ignore_label repeated force_label }``.
Bottom (N, 1, H, W) label map; top (N, max_labels, 1, 1): per image the distinct values that are
not ignored, together with the forced ones, in increasing order, padded with -1.  As the C++:
values compare exactly as floats (the sets hold Dtype, not int); max_labels must exceed the number
of distinct forced labels; an image with more than max_labels values is an error.  No gradient:
a backward into the label map is an error, as Caffe's LOG(FATAL).
"""
import torch

from ._grad import refuse_backward
from ._params import require_4d, required
from .base import Layer, register


@register("UniqueLabel")
class UniqueLabelLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("unique_label_param")
        self.max_labels = int(required(self, "unique_label_param", "max_labels"))
        self.ignore = sorted({float(v) for v in p.getlist("ignore_label")})
        self.force = sorted({float(v) for v in p.getlist("force_label")})
        if self.max_labels <= len(self.force):
            raise self.error(f"max_labels {self.max_labels} must exceed the {len(self.force)} "
                             "forced label(s): at least one label more than the forced ones "
                             "needs to fit")

    def _check(self, shape):
        require_4d(self, shape)
        if shape[1] != 1:
            raise self.error(f"the label map must have one channel, got shape {tuple(shape)}")

    def layer_setup(self, bottom_shapes):
        self._check(tuple(bottom_shapes[0]))
        return [(bottom_shapes[0][0], self.max_labels, 1, 1)]

    def forward(self, label):
        self._check(tuple(label.shape))
        n = label.shape[0]
        out = torch.full((n, self.max_labels, 1, 1), -1.0, dtype=label.dtype,
                         device=label.device)
        force = torch.tensor(self.force, dtype=label.dtype, device=label.device)
        for i in range(n):
            v = label[i].detach().reshape(-1)
            keep = torch.ones_like(v, dtype=torch.bool)
            for ig in self.ignore:
                keep &= v != ig
            vals = torch.unique(torch.cat([v[keep], force]))   # sorted ascending
            if vals.numel() > self.max_labels:
                raise self.error(f"image {i} has {vals.numel()} distinct labels, more than "
                                 f"max_labels {self.max_labels}: increase the capacity of "
                                 "UniqueLabel")
            out[i, :vals.numel(), 0, 0] = vals
        return (refuse_backward(self, out, [label], "cannot propagate down to the label input"),)
