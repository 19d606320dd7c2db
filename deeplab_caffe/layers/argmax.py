"""ArgMax: the indices (and optionally values) of the top_k largest entries.

``argmax_param { out_max_val (false) top_k (1) axis }``.  Ties: the larger index ranks first
(both C++ versions sort (value, index) pairs with std::greater).  Two behaviours, by the file's
dialect (LayerSpec.dialect):
  * DeepLab v1's fork (ARGMAX in a deeplab-public file): per pixel, over the channels of an
    (N, C, H, W) bottom, top_k <= C; top (N, top_k, H, W) of channel indices, or with out_max_val
    (N, 2 top_k, H, W): the indices, then the values.  Backward does nothing (the fork's empty
    Backward_cpu): the top carries no gradient.
  * BVLC (V2 and BVLC V1 files): without ``axis``, over all of C*H*W of each image, top
    (N, 1, top_k) (N, 2, top_k with out_max_val: indices then values), padded to at least 3 axes
    with ones; with ``axis``, along that axis, top = bottom shape with that axis top_k, holding
    the indices, or only the values with out_max_val.  A backward that reaches the bottom is an
    error (BVLC's NOT_IMPLEMENTED).
"""
import torch

from ._grad import detached, refuse_backward
from ._params import canonical_axis, count, require_4d, scalar
from .base import Layer, register


def top_k_desc(x, k, dim):
    """(values, indices) of the k largest along ``dim``, the larger index first on ties."""
    flipped = x.flip(dim)
    vals, idx = torch.sort(flipped, dim=dim, descending=True, stable=True)
    idx = (x.shape[dim] - 1) - idx
    return vals.narrow(dim, 0, k), idx.narrow(dim, 0, k)


@register("ArgMax")
class ArgMaxLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("argmax_param")
        self.out_max_val = bool(scalar(p, "out_max_val", False))
        self.top_k = int(scalar(p, "top_k", 1))
        if self.top_k < 1:
            raise self.error(f"top_k must not be less than 1, got {self.top_k}")
        self.fork = spec.dialect == "deeplab_v1"
        self.axis = None if self.fork else scalar(p, "axis")

    def _top_shape(self, s):
        k = self.top_k
        if self.fork:
            require_4d(self, s)
            if k > s[1]:
                raise self.error(f"top_k {k} must be less than or equal to the number of "
                                 f"channels ({s[1]})")
            return (s[0], 2 * k if self.out_max_val else k, s[2], s[3])
        if self.axis is not None:
            a = canonical_axis(self, int(self.axis), len(s))
            if s[a] < k:
                raise self.error(f"top_k {k} exceeds axis {a}'s size {s[a]}")
            return s[:a] + (k,) + s[a + 1:]
        if count(s, 1) < k:
            raise self.error(f"top_k {k} exceeds the {count(s, 1)} values per image")
        shape = [1] * max(len(s), 3)
        shape[0], shape[2] = s[0], k
        if self.out_max_val:
            shape[1] = 2
        return tuple(shape)

    def layer_setup(self, bottom_shapes):
        return [self._top_shape(tuple(bottom_shapes[0]))]

    def forward(self, x):
        shape = self._top_shape(tuple(x.shape))
        with torch.no_grad():
            k = self.top_k
            if self.fork:
                vals, idx = top_k_desc(x, k, 1)
                parts = [idx.to(x.dtype)] + ([vals] if self.out_max_val else [])
                return detached(torch.cat(parts, 1))
            if self.axis is not None:
                a = canonical_axis(self, int(self.axis), x.dim())
                vals, idx = top_k_desc(x, k, a)
                out = vals if self.out_max_val else idx.to(x.dtype)
            else:
                vals, idx = top_k_desc(x.reshape(x.shape[0], -1), k, 1)
                parts = [idx.to(x.dtype)] + ([vals] if self.out_max_val else [])
                out = torch.stack(parts, 1).reshape(shape)
        return (refuse_backward(self, out, [x], "backward is not implemented (Caffe's "
                                "NOT_IMPLEMENTED)"),)
