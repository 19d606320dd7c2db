"""DENSE_CRF (DeepLab v1's DenseCRFLayer): mean-field marginals of the fully connected CRF.

dense_crf_param: max_iter (default 10) and the repeated pos_w / pos_xy_std (one spatial Potts
kernel each) and bi_w / bi_xy_std / bi_rgb_std (one bilateral Potts kernel each); no defaults, so
a layer without any of them just returns softmax(scores).

Bottoms: [0] upsampled scores (N, L, H, W); [1] data_dim (N, 1, 1, 2) holding each image's valid
(height, width); [2] optional, the data blob (N, 3, H, W).  The colour features are that blob as
it comes, divided by bi_rgb_std, channels in blob order (B, G, R): DeepLab's
SetupPairwiseFunctions ("assume im is mean-centered") does exactly that, and the permutohedral
lattice is not translation-invariant, so adding a mean back would change the result.
data_dim: when both of an image's values are at least the blob's (H, W), the CRF runs on the
whole padded blob, as the C++ does; otherwise on the top-left (h, w) region.
Top: marginals (N, L, H, W), zero outside the region.  No gradient.
Unary = -log softmax(scores); per-pixel normalisation after filtering (NORMALIZE_AFTER).
Deliberate difference: with N > 1 the C++ reads image 0's colours for every image (no per-image
offset into bottom[2]); each image uses its own here.
"""
import torch

from ..crf.dense_crf import dense_crf
from ..crf.params import kernel_params
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
        return [scores]

    @staticmethod
    def effective_data_dim(data_dim, height, width):
        """DeepLab's rule per image: the padded (height, width) when the stored size is at least
        that on both axes (the image was cropped), else the stored size (it was padded)."""
        dd = data_dim.detach().reshape(-1, 2).to("cpu", torch.float64).clone()
        whole = (dd[:, 0] >= height) & (dd[:, 1] >= width)
        dd[whole] = torch.tensor([height, width], dtype=torch.float64)
        return dd

    def forward(self, scores, data_dim, image=None):
        with torch.no_grad():
            img = image.detach().float() if image is not None and self.bi_w else None
            try:
                dims = self.effective_data_dim(data_dim, scores.shape[2], scores.shape[3])
                q = dense_crf(scores.detach().float().contiguous(), img, pos_w=self.pos_w,
                              pos_xy_std=self.pos_xy_std, bi_w=self.bi_w,
                              bi_xy_std=self.bi_xy_std, bi_rgb_std=self.bi_rgb_std,
                              max_iter=self.max_iter, data_dim=dims,
                              normalization="NORMALIZE_AFTER")
            except CRFError as e:
                raise self.error(str(e)) from None
        return (q,)
