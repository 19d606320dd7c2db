"""DENSE_CRF (DeepLab v1's DenseCRFLayer): mean-field marginals of the fully connected CRF.

dense_crf_param: max_iter (default 10) and the repeated pos_w / pos_xy_std (one spatial Potts
kernel each) and bi_w / bi_xy_std / bi_rgb_std (one bilateral Potts kernel each); no defaults, so
a layer without any of them just returns softmax(scores).

Bottoms: [0] upsampled scores (N, L, H, W); [1] data_dim (N, 1, 1, 2) holding each image's valid
(height, width); [2] optional, the data blob (N, 3, H, W): BGR with the mean subtracted, as the
IMAGE_SEG_DATA transformer leaves it.  The colour features need the 8-bit image back, so the layer
adds ``mean_bgr`` (a layer attribute the Net may set from the data layer's mean_value; DeepLab's
default mean 104.008, 116.669, 122.675 otherwise), rounds and clamps to 0..255, and uses the
channels in blob order (B, G, R).
Top: marginals (N, L, H, W), zero outside each image's data_dim region.  No gradient.
Unary = -log softmax(scores); per-pixel normalisation after filtering (NORMALIZE_AFTER).
"""
import torch

from ..crf.dense_crf import dense_crf
from ..errors import CRFError
from .base import Layer, register

DEEPLAB_MEAN_BGR = (104.008, 116.669, 122.675)


@register("DenseCRF")
class DenseCRFLayer(Layer):
    min_num_bottom = 2
    max_num_bottom = 3
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("dense_crf_param")
        self.max_iter = int(p.get("max_iter", 10))
        self.pos_w = [float(v) for v in p.getlist("pos_w")]
        self.pos_xy_std = [float(v) for v in p.getlist("pos_xy_std")]
        self.bi_w = [float(v) for v in p.getlist("bi_w")]
        self.bi_xy_std = [float(v) for v in p.getlist("bi_xy_std")]
        self.bi_rgb_std = [float(v) for v in p.getlist("bi_rgb_std")]
        self.mean_bgr = DEEPLAB_MEAN_BGR

    def bind_bottom_producers(self, producers):
        """Called by the Net with the layers that produce this layer's bottoms: the image's
        mean comes back from its data layer's transform_param.mean_value (BGR), if it has one."""
        if len(producers) < 3 or producers[2] is None:
            return
        mean = producers[2].spec.param_message("transform_param").getlist("mean_value")
        if len(mean) == 3:
            self.mean_bgr = tuple(float(v) for v in mean)
        elif len(mean) == 1:
            self.mean_bgr = (float(mean[0]),) * 3

    def setup(self, bottom_shapes):
        self.check_counts(len(bottom_shapes), len(self.spec.top) or 1)
        if self.max_iter < 0:
            raise self.error(f"dense_crf_param.max_iter must be >= 0, got {self.max_iter}")
        if len(self.pos_w) != len(self.pos_xy_std):
            raise self.error(f"dense_crf_param: {len(self.pos_w)} pos_w but "
                             f"{len(self.pos_xy_std)} pos_xy_std")
        if not len(self.bi_w) == len(self.bi_xy_std) == len(self.bi_rgb_std):
            raise self.error(f"dense_crf_param: bi_w, bi_xy_std and bi_rgb_std counts differ "
                             f"({len(self.bi_w)}, {len(self.bi_xy_std)}, {len(self.bi_rgb_std)})")
        for name in ("pos_xy_std", "bi_xy_std", "bi_rgb_std"):
            for s in getattr(self, name):
                if not s > 0:
                    raise self.error(f"dense_crf_param.{name} must be > 0, got {s}")
        scores = tuple(bottom_shapes[0])
        if len(scores) != 4 or scores[1] < 2:
            raise self.error(f"bottom[0] (scores) must be N x L x H x W with L >= 2, got {scores}")
        dim = tuple(bottom_shapes[1])
        if len(dim) == 0 or dim[0] != scores[0] or _prod(dim) != 2 * scores[0]:
            raise self.error(f"bottom[1] (data_dim) must be {scores[0]} x 1 x 1 x 2, got {dim}")
        if self.bi_w and len(bottom_shapes) < 3:
            raise self.error("bilateral kernels (bi_w) need the image as bottom[2]")
        if len(bottom_shapes) == 3:
            img = tuple(bottom_shapes[2])
            if len(img) != 4 or img[0] != scores[0] or img[1] != 3 or img[2:] != scores[2:]:
                raise self.error(f"bottom[2] (image) must be {scores[0]} x 3 x {scores[2]} x "
                                 f"{scores[3]}, got {img}")
        return [scores]

    def forward(self, scores, data_dim, image=None):
        with torch.no_grad():
            img = None
            if image is not None and self.bi_w:
                mean = torch.tensor(self.mean_bgr, dtype=torch.float32, device=image.device)
                img = (image.detach().float() + mean.view(1, 3, 1, 1)).round_().clamp_(0, 255)
            try:
                q = dense_crf(scores.detach().float().contiguous(), img, pos_w=self.pos_w,
                              pos_xy_std=self.pos_xy_std, bi_w=self.bi_w,
                              bi_xy_std=self.bi_xy_std, bi_rgb_std=self.bi_rgb_std,
                              max_iter=self.max_iter, data_dim=data_dim,
                              normalization="NORMALIZE_AFTER")
            except CRFError as e:
                raise self.error(str(e)) from None
        return (q,)


def _prod(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n
