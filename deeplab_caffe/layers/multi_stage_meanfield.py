"""MultiStageMeanfield (CRF-RNN, torrvision/crfasrnn's caffe-crfrnn): ``num_iterations``
mean-field iterations of the dense CRF as one trainable layer.

multi_stage_meanfield_param: num_iterations (> 1, as the C++ checks), theta_alpha / theta_beta
(bilateral: (x, y)/theta_alpha, the image's channels/theta_beta), theta_gamma (spatial: (x,
y)/theta_gamma), spatial_filter_weight / bilateral_filter_weight (the initial diagonals) or their
*_weights_str forms (one number per label, or one for all; they win when given),
compatibility_mode (POTTS: -I; POTTS_ZERO: -I + 1).  threshold and forced_*_filter_weight are
read and unused, as in CRF-RNN.  Absent fields take CRF-RNN's caffe.proto defaults (thetas 10,
weights 1, num_iterations 1, which the > 1 check then refuses).

Bottoms: [0] unary (N, L, H, W) scores, [1] Q0 (N, L, H, W), the first iteration's softmax
input (a Split copy of the unary in CRF-RNN's nets), [2] image (N, C, H, W), the data blob as it
comes (colours in blob order).  Top: the last iteration's unary - C (W_s m_s + W_b m_b),
unnormalised.
Blobs, in CRF-RNN's order so its caffemodels load: [0] spatial kernel weights W_s, [1] bilateral
kernel weights W_b, [2] compatibility matrix C, each 1 x 1 x L x L.
Backward (autograd over the iterations, crf/trainable.py): to unary, Q0 and the three blobs;
none to the image.  Deliberate difference: CRF-RNN builds the spatial lattice once at setup and
logs that batch size > 1 is untested; here every image of the batch has its own lattices.
"""
import torch

from ..crf.trainable import crfrnn_forward
from ..errors import CRFError
from .base import Layer, register


def _diagonal(p, layer, name, single, labels):
    text = p.get(f"{name}_weights_str")
    if text is None:
        vals = [float(p.get(f"{name}_weight", single))]
    else:
        try:
            vals = [float(v) for v in str(text).split()]
        except ValueError:
            raise layer.error(f"{name}_weights_str must be numbers, got {text!r}") from None
    if len(vals) not in (1, labels):
        raise layer.error(f"{name}_weights_str holds {len(vals)} values; the unary has {labels} "
                          f"labels (give one per label, or one for all)")
    return torch.diag(torch.tensor(vals * (labels if len(vals) == 1 else 1),
                                   dtype=torch.float32)).reshape(1, 1, labels, labels)


@register("MultiStageMeanfield")
class MultiStageMeanfieldLayer(Layer):
    exact_num_bottom = 3
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("multi_stage_meanfield_param")
        # CRF-RNN's caffe.proto defaults (theta_* 10, num_iterations 1, weights 1); it marks
        # the thetas and num_iterations required, which we do not enforce.
        self.num_iterations = int(p.get("num_iterations", 1))
        self.thetas = tuple(float(p.get(n, 10.0)) for n in
                            ("theta_alpha", "theta_beta", "theta_gamma"))

    def layer_setup(self, bottom_shapes):
        if self.num_iterations <= 1:
            raise self.error(f"multi_stage_meanfield_param: num_iterations must be greater than "
                             f"1, got {self.num_iterations}")
        for name, v in zip(("theta_alpha", "theta_beta", "theta_gamma"), self.thetas):
            if not v > 0 or v == float("inf"):
                raise self.error(f"multi_stage_meanfield_param: {name} must be > 0, got {v}")
        unary, q0, img = (tuple(s) for s in bottom_shapes)
        if len(unary) != 4 or unary[1] < 2:
            raise self.error(f"bottom[0] (unary) must be N x L x H x W with L >= 2, got {unary}")
        if q0 != unary:
            raise self.error(f"bottom[1] (Q0) must have bottom[0]'s shape {unary}, got {q0}")
        if len(img) != 4 or img[0] != unary[0] or img[2:] != unary[2:] or not 1 <= img[1] <= 14:
            raise self.error(f"bottom[2] (image) must be {unary[0]} x C x {unary[2]} x "
                             f"{unary[3]} with 1 <= C <= 14, got {img}")
        labels = unary[1]
        if len(self.blobs) == 0:
            p = self.param("multi_stage_meanfield_param")
            mode = p.get("compatibility_mode", "POTTS")
            compat = -torch.eye(labels)
            if mode in ("POTTS_ZERO", 1):
                compat = compat + 1.0
            for blob in (_diagonal(p, self, "spatial_filter", 1.0, labels),
                         _diagonal(p, self, "bilateral_filter", 1.0, labels),
                         compat.reshape(1, 1, labels, labels)):
                self.blobs.append(torch.nn.Parameter(blob))
        return [unary]

    def forward(self, unary, q0, image):
        L = unary.shape[1]
        w_s, w_b, compat = (b.reshape(L, L) for b in self.blobs)
        try:
            out = crfrnn_forward(unary.float(), q0.float(), image.detach(), w_s, w_b, compat,
                                 self.num_iterations, *self.thetas)
        except CRFError as e:
            raise self.error(str(e)) from None
        return (out.to(unary.dtype),)
