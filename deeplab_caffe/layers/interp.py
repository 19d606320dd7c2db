"""Interp (DeepLab v1 INTERP): align-corners bilinear resize of an optionally cropped window.

DeepLab v1 (``interp_layer.cpp``, ``util/interp.cpp``):
  * exactly one of zoom_factor, shrink_factor, or height + width;  pad_beg, pad_end <= 0 crop;
  * in_eff = in + pad_beg + pad_end; the window starts at -pad_beg on both axes;
  * zoom:   out = in_eff + (in_eff - 1)(zoom - 1)          (41 -> 321, 65 -> 513)
    shrink: out = (in_eff - 1) / shrink + 1, integer division  (321 -> 41, 305 -> 39)
  * source position = out_index * (in_eff - 1) / (out - 1), the ratio computed in float32 as
    Caffe does (0 when out = 1); equal sizes copy the window.
DeepLab v2 later allowed zoom and shrink together (shrink first, then zoom); we accept that too.
The backward is the adjoint of the same linear map (autograd through index_select).
"""
import torch

from ._params import require_4d, scalar
from .base import Layer, register


def interp_out_size(layer, size, p):
    """Output length for an input length ``size`` (already cropped: in_eff)."""
    if size <= 0:
        raise layer.error(f"cropping with pad_beg/pad_end leaves an empty input ({size})")
    zoom, shrink = scalar(p, "zoom_factor"), scalar(p, "shrink_factor")
    if p.has("height") and p.has("width") and zoom is None and shrink is None:
        return None     # explicit size, set by the caller per axis
    out = size
    if shrink is not None:
        out = (out - 1) // shrink + 1
    if zoom is not None:
        out = out + (out - 1) * (zoom - 1)
    return out


def interp_weights(in_size, out_size, offset, device, dtype):
    """Per output index: source indices i0, i1 (into the uncropped axis) and weights l0, l1."""
    # Caffe keeps the ratio and source position in float32 whatever the Dtype.
    f32 = torch.float32
    ratio = (torch.tensor(in_size - 1, dtype=f32) / torch.tensor(out_size - 1, dtype=f32)
             if out_size > 1 else torch.tensor(0.0, dtype=f32))
    pos = ratio * torch.arange(out_size, dtype=torch.float32)
    i0 = pos.to(torch.int64)
    step = (i0 < in_size - 1).to(torch.int64)
    l1 = (pos - i0.to(torch.float32)).to(dtype)
    l0 = 1 - l1
    i0 = i0 + offset
    return (i0.to(device), (i0 + step).to(device), l0.to(device), l1.to(device))


def _resize_axis(x, dim, in_size, out_size, offset):
    i0, i1, l0, l1 = interp_weights(in_size, out_size, offset, x.device, x.dtype)
    shape = [1] * x.dim()
    shape[dim] = out_size
    return (x.index_select(dim, i0) * l0.view(shape) +
            x.index_select(dim, i1) * l1.view(shape))


@register("Interp")
class InterpLayer(Layer):
    """Bottom (N, C, H, W) -> top (N, C, H_out, W_out)."""
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.p = self.param("interp_param")
        specs = (p.has("zoom_factor") + p.has("shrink_factor") +
                 (p.has("height") and p.has("width")))
        both = p.has("zoom_factor") and p.has("shrink_factor") and not (
            p.has("height") or p.has("width"))
        if specs != 1 and not both:
            raise self.error("Interp output size is given by exactly one of zoom_factor, "
                             "shrink_factor, or height and width")
        factor = p.has("zoom_factor") or p.has("shrink_factor")
        # DeepLab's check is has_zoom != (has_height && has_width): a lone height or width
        # beside a factor is accepted and ignored.
        if p.has("height") != p.has("width") and not factor:
            raise self.error("Interp needs both height and width")
        for name in ("zoom_factor", "shrink_factor"):
            if p.has(name) and scalar(p, name) < 1:
                raise self.error(f"{name} must be >= 1, got {scalar(p, name)}")
        for name in ("height", "width"):
            if p.has(name) and scalar(p, name) <= 0:
                raise self.error(f"{name} must be positive, got {scalar(p, name)}")
        self.pad_beg = scalar(p, "pad_beg", 0)
        self.pad_end = scalar(p, "pad_end", 0)
        if self.pad_beg > 0 or self.pad_end > 0:
            raise self.error(f"Interp supports only pad_beg, pad_end <= 0 (cropping), got "
                             f"{self.pad_beg}, {self.pad_end}")

    def _sizes(self, H, W):
        h_eff, w_eff = H + self.pad_beg + self.pad_end, W + self.pad_beg + self.pad_end
        oh, ow = interp_out_size(self, h_eff, self.p), interp_out_size(self, w_eff, self.p)
        if oh is None:
            oh, ow = scalar(self.p, "height"), scalar(self.p, "width")
        return h_eff, w_eff, oh, ow

    def layer_setup(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        require_4d(self, shape)
        _, _, oh, ow = self._sizes(shape[2], shape[3])
        return [(shape[0], shape[1], oh, ow)]

    def forward(self, x):
        if x.dim() != 4:
            raise self.error(f"Interp needs a 4-axis (N, C, H, W) input, got {tuple(x.shape)}")
        h_eff, w_eff, oh, ow = self._sizes(x.shape[2], x.shape[3])
        off = -self.pad_beg
        if (h_eff, w_eff) == (oh, ow):
            return (x[:, :, off:off + h_eff, off:off + w_eff].clone(),)
        y = _resize_axis(x, 3, w_eff, ow, off)
        return (_resize_axis(y, 2, h_eff, oh, off),)
