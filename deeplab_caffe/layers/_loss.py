"""What BVLC's loss layers share (loss_layer.cpp): the first-dimension check of LossLayer's
Reshape, ``loss_param``'s normalization and Caffe's get_normalizer, and the refusal to
backpropagate to label (and other non-data) bottoms."""
import torch

from ._grad import refuse_backward
from ._params import enum_name, scalar
from .base import Layer

NORMALIZATIONS = ["FULL", "VALID", "BATCH_SIZE", "NONE"]


def normalization_mode(layer, default):
    """``loss_param``'s normalization; the deprecated ``normalize`` means VALID (true) or
    BATCH_SIZE (false); ``default`` where neither is given (it differs by layer type)."""
    lp = layer.param("loss_param")
    if lp.has("normalization"):
        return enum_name(layer, lp, "normalization", default, NORMALIZATIONS)
    if lp.has("normalize"):
        return "VALID" if scalar(lp, "normalize") else "BATCH_SIZE"
    return default


def normalizer(mode, outer, inner, valid_count):
    """Caffe's LossLayer get_normalizer: the divisor of the summed loss, at least 1.
    ``valid_count`` None means "every position" (SoftmaxWithLoss without ignore_label)."""
    if mode == "FULL" or (mode == "VALID" and valid_count is None):
        n = outer * inner
    elif mode == "VALID":
        return torch.clamp(valid_count, min=1.0) if torch.is_tensor(valid_count) \
            else max(1.0, float(valid_count))
    elif mode == "BATCH_SIZE":
        n = outer
    else:
        n = 1
    return max(1.0, float(n))


class BVLCLossLayer(Layer):
    """LossLayer: two bottoms (scores, labels) by default, a scalar loss top added when the
    prototxt lists none, bottoms with the same first dimension."""
    exact_num_bottom = 2
    exact_num_top = 1
    auto_top_blobs = True

    def check_first_dims(self, shapes):
        a, b = shapes[0], shapes[1]
        if not a or not b or a[0] != b[0]:
            raise self.error(f"the data {tuple(a)} and label {tuple(b)} should have the same "
                             f"first dimension")

    def no_gradient_to(self, loss, bottoms, what):
        """``loss`` whose backward is an error if it reaches one of ``bottoms`` (Caffe's
        LOG(FATAL) "cannot backpropagate to <what>"); unchanged when none needs a gradient."""
        if not torch.is_grad_enabled() or not any(
                torch.is_tensor(b) and b.requires_grad for b in bottoms):
            return loss
        return refuse_backward(self, loss, bottoms, f"cannot backpropagate to {what}")

    def int_labels(self, label, num_classes, where="label"):
        """Labels as int64 (truncated toward zero, static_cast<int>), each in [0, num_classes)."""
        lab = label.detach().reshape(-1).to(torch.int64)
        bad = (lab < 0) | (lab >= num_classes)
        if bool(bad.any()):
            raise self.error(f"{where} {int(lab[bad][0])} out of range [0, {num_classes})")
        return lab
