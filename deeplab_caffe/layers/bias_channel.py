"""BiasChannel (DeepLab v1 BIAS_CHANNEL): adds a constant to the score maps of the classes an
image is known to contain (the fixed-bias E-step of the semi-supervised bounding-box training).

``bias_channel_param { bg_bias (1) fg_bias (2) repeated ignore_label }``, both biases >= 0.
Bottoms: scores (N, C, H, W) and a label list (N, L, 1, 1) such as UniqueLabel's.  Top = scores,
plus bg_bias on channel 0 when label 0 is listed and fg_bias on channel l for every listed l in
[1, C).  As the fork's latest C++: labels are truncated to int; -1 (UniqueLabel's filler) and the
ignore_labels are skipped; a label listed twice is biased twice; any other label outside [0, C)
is an error.  Gradient: the top's to the scores unchanged; a backward into the label list is an
error (Caffe's LOG(FATAL)).
"""
import torch

from ._grad import refuse_backward
from ._params import require_4d, scalar
from .base import Layer, register


def check_label_list(layer, scores_shape, labels_shape):
    """The (N, L, 1, 1) label-list bottom next to (N, C, H, W) scores, as the C++ checks it."""
    require_4d(layer, scores_shape, "score bottom")
    require_4d(layer, labels_shape, "label bottom")
    if labels_shape[0] != scores_shape[0]:
        raise layer.error(f"label list num {labels_shape[0]} differs from the scores' "
                          f"{scores_shape[0]}")
    if labels_shape[1] < 1 or labels_shape[2:] != (1, 1):
        raise layer.error(f"the label list must be (N, max_labels >= 1, 1, 1), got "
                          f"{tuple(labels_shape)}")


@register("BiasChannel")
class BiasChannelLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("bias_channel_param")
        self.bg_bias = float(scalar(p, "bg_bias", 1.0))
        self.fg_bias = float(scalar(p, "fg_bias", 2.0))
        for what, v in (("bg_bias", self.bg_bias), ("fg_bias", self.fg_bias)):
            if v < 0:
                raise self.error(f"{what} must not be negative, got {v}")
        self.ignore = {-1} | {int(v) for v in p.getlist("ignore_label")}

    def layer_setup(self, bottom_shapes):
        check_label_list(self, tuple(bottom_shapes[0]), tuple(bottom_shapes[1]))
        return [tuple(bottom_shapes[0])]

    def biases(self, labels, num_channels):
        """[(image, channel, bias)] in the C++'s order (each listed label adds its bias)."""
        out = []
        for i, row in enumerate(labels.detach().reshape(labels.shape[0], -1).cpu().tolist()):
            for v in row:
                lab = int(v)    # static_cast<int>: truncation toward zero
                if lab in self.ignore:
                    continue
                if not 0 <= lab < num_channels:
                    raise self.error(f"unexpected label {lab} in image {i} (scores have "
                                     f"{num_channels} channels)")
                out.append((i, lab, self.bg_bias if lab == 0 else self.fg_bias))
        return out

    def forward(self, scores, labels):
        check_label_list(self, tuple(scores.shape), tuple(labels.shape))
        out = scores.clone()
        # One addition per listed label, in order, as caffe_add_scalar (same rounding).
        for i, lab, b in self.biases(labels, scores.shape[1]):
            out[i, lab] += b
        guard = refuse_backward(self, torch.zeros((), dtype=scores.dtype, device=scores.device),
                                [labels], "cannot propagate down to the label input")
        return (out + guard if guard.requires_grad else out,)
