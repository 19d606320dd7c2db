"""DeepLab's DenseCRF parameters: the one check of the kernel arguments (used by ``dense_crf``
and the DenseCRF layer), and ``CRFParams``, one setting of the five parameters the evaluation
tools apply when a net has no DenseCRF layer."""
from dataclasses import asdict, dataclass
from numbers import Number
from typing import List, NamedTuple

from ..errors import CRFError


class KernelParams(NamedTuple):
    """Checked kernel arguments: one Potts kernel per entry (Caffe's repeated fields)."""
    pos_w: List[float]
    pos_xy_std: List[float]
    bi_w: List[float]
    bi_xy_std: List[float]
    bi_rgb_std: List[float]
    max_iter: int


def _as_list(name, v):
    if v is None:
        return []
    vals = [v] if isinstance(v, Number) else list(v)
    for x in vals:
        if not isinstance(x, Number) or isinstance(x, bool) or x != x:
            raise CRFError(f"{name} must be numbers, got {x!r}")
    return [float(x) for x in vals]


def _check_std(name, values):
    for s in values:
        if not s > 0 or s == float("inf"):
            raise CRFError(f"{name} must be > 0 and finite, got {s}")


def kernel_params(pos_w, pos_xy_std, bi_w, bi_xy_std, bi_rgb_std, max_iter):
    """KernelParams from numbers or equal-length sequences; a CRFError names the bad argument."""
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise CRFError(f"max_iter must be an int >= 0, got {max_iter!r}")
    pos_w, pos_xy = _as_list("pos_w", pos_w), _as_list("pos_xy_std", pos_xy_std)
    bi_w, bi_xy = _as_list("bi_w", bi_w), _as_list("bi_xy_std", bi_xy_std)
    bi_rgb = _as_list("bi_rgb_std", bi_rgb_std)
    if len(pos_w) != len(pos_xy):
        raise CRFError(f"pos_w and pos_xy_std need the same count, got {len(pos_w)} and "
                       f"{len(pos_xy)}")
    if not len(bi_w) == len(bi_xy) == len(bi_rgb):
        raise CRFError(f"bi_w, bi_xy_std and bi_rgb_std need the same count, got "
                       f"{len(bi_w)}, {len(bi_xy)} and {len(bi_rgb)}")
    _check_std("pos_xy_std", pos_xy)
    _check_std("bi_xy_std", bi_xy)
    _check_std("bi_rgb_std", bi_rgb)
    for name, ws in (("pos_w", pos_w), ("bi_w", bi_w)):
        for v in ws:
            if abs(v) == float("inf"):
                raise CRFError(f"{name} must be finite, got {v}")
    return KernelParams(pos_w, pos_xy, bi_w, bi_xy, bi_rgb, max_iter)


@dataclass
class CRFParams:
    """DeepLab's DenseCRF settings (defaults: DeepLab-LargeFOV's published values)."""
    bi_w: float = 4.0
    bi_xy_std: float = 121.0
    bi_rgb_std: float = 5.0
    pos_w: float = 3.0
    pos_xy_std: float = 3.0
    max_iter: int = 10

    def as_dict(self):
        return asdict(self)

    def apply(self, scores, image, data_dim=None):
        """Marginals (N, L, H, W) of scores (N, L, H, W) with image (N, 3, H, W) 0..255."""
        from .dense_crf import dense_crf
        return dense_crf(scores.float().contiguous(), image, pos_w=self.pos_w,
                         pos_xy_std=self.pos_xy_std, bi_w=self.bi_w, bi_xy_std=self.bi_xy_std,
                         bi_rgb_std=self.bi_rgb_std, max_iter=int(self.max_iter),
                         data_dim=data_dim)
