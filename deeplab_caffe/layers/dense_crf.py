"""DENSE_CRF (DeepLab v1's DenseCRFLayer): mean-field marginals of the fully connected CRF.

dense_crf_param: max_iter (default 10) and the repeated pos_w / pos_xy_std (one spatial Potts
kernel each) and bi_w / bi_xy_std / bi_rgb_std (one bilateral Potts kernel each); no defaults, so
a layer without any of them just returns softmax(scores).

Bottoms: [0] upsampled scores (N, L, H, W); [1] data_dim (N, 1, 1, 2) holding each image's valid
(height, width); [2] optional, the data blob (N, 3, H, W): BGR with the mean subtracted, as the
IMAGE_SEG_DATA transformer leaves it.  The colour features use the 8-bit image back
(``data.transform.image_from_data``: divided by scale, the mean added, rounded, clamped to 0..255,
channels in blob order B, G, R), undone with the transform the data blob carries
(``self.bottom_transforms[2]``, from its data layer) or, for a blob without one (an Input),
DeepLab's mean.  (DeepLab's C++ reads the mean-subtracted blob as it is; see issue #13.)
Top: marginals (N, L, H, W), zero outside each image's data_dim region.  No gradient.
Unary = -log softmax(scores); per-pixel normalisation after filtering (NORMALIZE_AFTER).
"""
import torch

from ..crf.dense_crf import dense_crf
from ..crf.params import kernel_params
from ..data.transform import DEEPLAB_MEAN_BGR, SegTransform
from ..errors import CRFError
from ._params import count
from .base import Layer, register


@register("DenseCRF")
class DenseCRFLayer(Layer):
    min_num_bottom = 2
    # DeepLab declares no maximum and ignores a fourth bottom; we reject it.
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
        self.image_transform = SegTransform(mean_value=DEEPLAB_MEAN_BGR)

    def layer_setup(self, bottom_shapes):
        try:
            kernel_params(self.pos_w, self.pos_xy_std, self.bi_w, self.bi_xy_std,
                          self.bi_rgb_std, self.max_iter)
        except CRFError as e:
            raise self.error(f"dense_crf_param: {e}") from None
        scores = tuple(bottom_shapes[0])
        if len(scores) != 4 or scores[1] < 2:
            raise self.error(f"bottom[0] (scores) must be N x L x H x W with L >= 2, got {scores}")
        dim = tuple(bottom_shapes[1])
        if len(dim) == 0 or dim[0] != scores[0] or count(dim) != 2 * scores[0]:
            raise self.error(f"bottom[1] (data_dim) must be {scores[0]} x 1 x 1 x 2, got {dim}")
        if self.bi_w and len(bottom_shapes) < 3:
            raise self.error("bilateral kernels (bi_w) need the image as bottom[2]")
        if len(bottom_shapes) == 3:
            img = tuple(bottom_shapes[2])
            if len(img) != 4 or img[0] != scores[0] or img[1] != 3 or img[2:] != scores[2:]:
                raise self.error(f"bottom[2] (image) must be {scores[0]} x 3 x {scores[2]} x "
                                 f"{scores[3]}, got {img}")
            if self.bottom_transforms[2] is not None:
                self.image_transform = self.bottom_transforms[2]
        return [scores]

    def forward(self, scores, data_dim, image=None):
        with torch.no_grad():
            img = None
            if image is not None and self.bi_w:
                img = self.image_transform.image_from_data(image)
            try:
                q = dense_crf(scores.detach().float().contiguous(), img, pos_w=self.pos_w,
                              pos_xy_std=self.pos_xy_std, bi_w=self.bi_w,
                              bi_xy_std=self.bi_xy_std, bi_rgb_std=self.bi_rgb_std,
                              max_iter=self.max_iter, data_dim=data_dim,
                              normalization="NORMALIZE_AFTER")
            except CRFError as e:
                raise self.error(str(e)) from None
        return (q,)
