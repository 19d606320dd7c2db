"""Pooling: MAX, AVE and STOCHASTIC with Caffe's ceil-then-clip output size and AVE divisor rule.

Caffe (BVLC and DeepLab v1 alike, ``pooling_layer.cpp``):
  * out = ceil((H + 2 pad - k) / stride) + 1 (BVLC ``round_mode: FLOOR`` uses floor); then, if
    any pad (h or w) is non-zero and the last window would start at or past H + pad, drop it.
  * MAX windows are clipped to the image, so padding never wins; an empty window gives -FLT_MAX.
  * AVE sums over the clipped window but divides by the window clipped to the *padded* image
    (end capped at H + pad), counted before clipping to the unpadded image.
  * STOCHASTIC (no padding allowed): TRAIN samples one element of each window with probability
    proportional to its value; TEST gives the value-weighted average sum(x^2) / sum(x), 0 for a
    window whose sum is not positive (BVLC master) or sum(x^2) / (FLT_MIN + sum(x)) whatever its
    sign (DeepLab's 2015 fork, for DeepLab v1 files).
PyTorch's ceil_mode follows the same rules except that it also drops a window when pad is 0, and
it rejects pad > k/2; where its sizes agree we use its kernels, otherwise explicit padding.
"""
import math

import torch
import torch.nn.functional as F

from ._params import FLT_MAX, enum_name, flt_min, require_4d, scalar
from .base import Layer, register

POOL_METHODS = ["MAX", "AVE", "STOCHASTIC"]
ROUND_MODES = ["CEIL", "FLOOR"]


def pooled_size(size, kernel, stride, pad, ceil_mode=True, any_pad=None):
    """Caffe's pooled length along one axis (``any_pad``: is pad_h or pad_w non-zero)."""
    if any_pad is None:
        any_pad = pad > 0
    q = (size + 2 * pad - kernel) / stride
    out = (math.ceil(q) if ceil_mode else math.floor(q)) + 1
    if any_pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _torch_size(size, kernel, stride, pad, ceil_mode):
    q = (size + 2 * pad - kernel) / stride
    out = (math.ceil(q) if ceil_mode else math.floor(q)) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def ave_divisor(size, kernel, stride, pad, out, like):
    """Per-output window length clipped to the padded input (1-D, length ``out``)."""
    start = torch.arange(out, device=like.device, dtype=torch.int64) * stride - pad
    end = torch.clamp(start + kernel, max=size + pad)
    return (end - start).to(like.dtype)


@register("Pooling")
class PoolingLayer(Layer):
    """Bottom (N, C, H, W) -> top (N, C, H_out, W_out); a second top (MAX only) holds the argmax
    index h * W + w of each window in the unpadded input (-1 for an empty window), as floats."""
    exact_num_bottom = 1
    min_num_top = 1
    max_num_top = 2

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        # Caffe samples in TRAIN only; the Net's train()/eval() switches it later.
        self.train(phase == "TRAIN")
        p = self.param("pooling_param")
        self.pool = enum_name(self, p, "pool", "MAX", POOL_METHODS)
        self.ceil_mode = enum_name(self, p, "round_mode", "CEIL", ROUND_MODES) == "CEIL"
        self.global_pooling = bool(scalar(p, "global_pooling", False))
        has_k, has_kh, has_kw = p.has("kernel_size"), p.has("kernel_h"), p.has("kernel_w")
        if self.global_pooling:
            if has_k or has_kh or has_kw:
                raise self.error("with global_pooling: true the kernel size cannot be specified")
            self.kernel = None
        else:
            if has_k and (has_kh or has_kw):
                raise self.error("kernel size is kernel_size OR kernel_h and kernel_w; not both")
            if not has_k and not (has_kh and has_kw):
                raise self.error("pooling needs kernel_size, or both kernel_h and kernel_w")
            k = scalar(p, "kernel_size")
            self.kernel = (k, k) if has_k else (scalar(p, "kernel_h"), scalar(p, "kernel_w"))
            if min(self.kernel) <= 0:
                raise self.error(f"kernel size must be positive, got {self.kernel}")
        self.pad = self._pair(p, "pad", 0)
        self.stride = self._pair(p, "stride", 1)
        if min(self.stride) <= 0:
            raise self.error(f"stride must be positive, got {self.stride}")
        if min(self.pad) < 0:
            raise self.error(f"pad must be non-negative, got {self.pad}")
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise self.error("with global_pooling: true only pad = 0 and stride = 1 are allowed")
        if self.pad != (0, 0):
            if self.pool not in ("MAX", "AVE"):
                raise self.error("padding is implemented only for AVE and MAX pooling")
            if self.kernel is not None and (self.pad[0] >= self.kernel[0] or
                                            self.pad[1] >= self.kernel[1]):
                raise self.error(f"pad {self.pad} must be smaller than kernel {self.kernel}")

    def _pair(self, p, name, default):
        has, has_h, has_w = p.has(name), p.has(name + "_h"), p.has(name + "_w")
        if has and (has_h or has_w):
            raise self.error(f"{name} is {name} OR {name}_h and {name}_w; not both")
        if has:
            v = scalar(p, name)
            return (v, v)
        if has_h != has_w:
            raise self.error(f"both {name}_h and {name}_w are required")
        return (scalar(p, name + "_h", default), scalar(p, name + "_w", default))

    # -- shapes ----------------------------------------------------------------------------------
    def _geometry(self, H, W):
        kh, kw = (H, W) if self.global_pooling else self.kernel
        (sh, sw), (ph, pw) = self.stride, self.pad
        any_pad = ph != 0 or pw != 0
        oh = pooled_size(H, kh, sh, ph, self.ceil_mode, any_pad)
        ow = pooled_size(W, kw, sw, pw, self.ceil_mode, any_pad)
        return kh, kw, sh, sw, ph, pw, oh, ow

    def layer_setup(self, bottom_shapes):
        if len(self.spec.top) == 2 and self.pool != "MAX":
            raise self.error("only MAX pooling has a second (mask) top")
        shape = tuple(bottom_shapes[0])
        require_4d(self, shape)
        return [self._top_shape(shape)] * len(self.spec.top)

    def _top_shape(self, shape):
        N, C, H, W = shape
        *_, oh, ow = self._geometry(H, W)
        if oh <= 0 or ow <= 0:
            raise self.error(f"pooling a {H}x{W} input gives an empty {oh}x{ow} output")
        return (N, C, oh, ow)

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, x):
        if x.dim() != 4:
            raise self.error(f"Pooling needs a 4-axis (N, C, H, W) input, got {tuple(x.shape)}")
        self._top_shape(tuple(x.shape))
        H, W = x.shape[2], x.shape[3]
        kh, kw, sh, sw, ph, pw, oh, ow = g = self._geometry(H, W)
        if self.pool == "STOCHASTIC":
            return (self._stochastic(x, g),)
        # PyTorch's own padding gives Caffe's result when its output size agrees.
        fast = (2 * ph <= kh and 2 * pw <= kw and H + 2 * ph >= kh and W + 2 * pw >= kw and
                _torch_size(H, kh, sh, ph, self.ceil_mode) == oh and
                _torch_size(W, kw, sw, pw, self.ceil_mode) == ow)
        if self.pool == "AVE":
            return (self._ave(x, g, fast),)
        return self._max(x, g, fast)

    def _pad_to_windows(self, x, g, value):
        """Pad left/top by pad and right/bottom (or crop) so the windows tile exactly."""
        kh, kw, sh, sw, ph, pw, oh, ow = g
        H, W = x.shape[2], x.shape[3]
        rh = (oh - 1) * sh + kh - H - ph
        rw = (ow - 1) * sw + kw - W - pw
        return F.pad(x, (pw, rw, ph, rh), value=value)

    def _ave(self, x, g, fast):
        kh, kw, sh, sw, ph, pw, oh, ow = g
        if fast:
            return F.avg_pool2d(x, (kh, kw), (sh, sw), (ph, pw), ceil_mode=self.ceil_mode,
                                count_include_pad=True)
        xp = self._pad_to_windows(x, g, 0.0)
        total = F.avg_pool2d(xp, (kh, kw), (sh, sw), divisor_override=1)
        H, W = x.shape[2], x.shape[3]
        div = (ave_divisor(H, kh, sh, ph, oh, x)[:, None] *
               ave_divisor(W, kw, sw, pw, ow, x)[None, :])
        return total / div

    def _max(self, x, g, fast):
        kh, kw, sh, sw, ph, pw, oh, ow = g
        W = x.shape[3]
        want_mask = len(self.spec.top) == 2
        if fast:
            out, idx = F.max_pool2d(x, (kh, kw), (sh, sw), (ph, pw), ceil_mode=self.ceil_mode,
                                    return_indices=True)
        else:
            xp = self._pad_to_windows(x, g, float("-inf"))
            out, idx = F.max_pool2d(xp, (kh, kw), (sh, sw), return_indices=True)
            if want_mask:   # index in the padded map -> index in the input
                Wp = xp.shape[3]
                idx = (idx // Wp - ph) * W + (idx % Wp - pw)
        # Caffe starts each max at -FLT_MAX: an empty (or all -inf) window yields -FLT_MAX.
        empty = out == float("-inf")
        out = torch.where(empty, torch.full_like(out, -FLT_MAX), out)
        if not want_mask:
            return (out,)
        mask = torch.where(empty, torch.full_like(idx, -1), idx).to(x.dtype)
        return (out, mask)

    def _stochastic(self, x, g):
        kh, kw, sh, sw, ph, pw, oh, ow = g
        # Windows start at o * stride and are clipped at H; zeros beyond add nothing.
        xp = self._pad_to_windows(x, g, 0.0)
        if not self.training:
            s = F.avg_pool2d(xp, (kh, kw), (sh, sw), divisor_override=1)
            s2 = F.avg_pool2d(xp * xp, (kh, kw), (sh, sw), divisor_override=1)
            if self.spec.dialect == "deeplab_v1":
                # DeepLab's 2015 fork starts the sum at FLT_MIN and divides whatever its sign.
                return s2 / (s + flt_min())
            # BVLC master: a window whose sum is not positive gives 0.
            return torch.where(s > 0, s2 / torch.where(s > 0, s, torch.ones_like(s)),
                               torch.zeros_like(s))
        N, C = x.shape[0], x.shape[1]
        win = xp.unfold(2, kh, sh).unfold(3, kw, sw).reshape(N, C, oh, ow, kh * kw)
        csum = torch.cumsum(win.detach(), dim=-1)
        thres = torch.rand(N, C, oh, ow, 1, device=x.device, dtype=x.dtype) * csum[..., -1:]
        # The first element whose running sum reaches the threshold is picked.
        pick = torch.clamp((csum < thres).sum(-1, keepdim=True), max=kh * kw - 1)
        return torch.gather(win, -1, pick).squeeze(-1)
