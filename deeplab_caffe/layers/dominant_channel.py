"""DominantChannel (DeepLab v1 DOMINANT_CHANNEL): the top_k channels that most often rank high
across an image (to prune unlikely class labels).

``dominant_channel_param { top_k (1) }``, 1 <= top_k < C.  Bottom (N, C, H, W); top
(N, top_k, 1, 1) channel indices.  Per pixel the channels are ranked by score (top_k of them);
hist[c][j] counts the pixels where channel c ranks j-th; channels are then sorted by their hist
row, compared lexicographically, largest first.  Equal scores and equal rows: the C++ uses
unstable sorts (partial_sort, sort), so their order is unspecified there; here the lower channel
index ranks first.  No gradient (Caffe's Backward is empty).
"""
import torch

from ._grad import detached
from ._params import require_4d, scalar
from .base import Layer, register


@register("DominantChannel")
class DominantChannelLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.top_k = int(scalar(self.param("dominant_channel_param"), "top_k", 1))
        if self.top_k < 1:
            raise self.error(f"top_k must not be less than 1, got {self.top_k}")

    def _check(self, shape):
        require_4d(self, shape)
        if self.top_k >= shape[1]:
            raise self.error(f"top_k {self.top_k} must be less than the number of channels "
                             f"({shape[1]})")

    def layer_setup(self, bottom_shapes):
        self._check(tuple(bottom_shapes[0]))
        return [(bottom_shapes[0][0], self.top_k, 1, 1)]

    @torch.no_grad()
    def forward(self, x):
        self._check(tuple(x.shape))
        n, c = x.shape[:2]
        k = self.top_k
        # Stable descending sort: ties keep the lower channel first.
        ranks = torch.sort(x.reshape(n, c, -1), dim=1, descending=True, stable=True).indices
        out = torch.empty(n, k, 1, 1, dtype=x.dtype, device=x.device)
        for i in range(n):
            hist = torch.stack([torch.bincount(ranks[i, j], minlength=c) for j in range(k)], 1)
            # Rows in lexicographic order, largest first, lower channel on ties: stable sorts
            # from the last column to the first (an LSD radix sort).
            order = torch.arange(c, device=x.device)
            for j in reversed(range(k)):
                idx = torch.sort(hist[order, j], descending=True, stable=True).indices
                order = order[idx]
            out[i, :, 0, 0] = order[:k].to(x.dtype)
        return detached(out)
