"""DeepLab's data transform (TransformImgAndSeg): its parameters, the transform itself, and its
inverse for the colour image.

A data layer that transforms its images carries its ``SegTransform`` as metadata of its data top
(``layer.top_transforms()``; the Net keeps it per blob in ``net.blob_transforms``), so whoever
needs the 8-bit image back (the DenseCRF layer's colour features, the evaluation tools) reads the
mean and scale from there and calls ``image_from_data``.
"""
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch

from ..errors import CaffeError

# DeepLab's (and VGG-16's) ImageNet mean, B, G, R: the mean_value of every released DeepLab
# prototxt, assumed where a data blob carries no transform.
DEEPLAB_MEAN_BGR = (104.008, 116.669, 122.675)


@dataclass(frozen=True)
class SegTransform:
    """The parameters of DeepLab's TransformImgAndSeg."""
    crop_size: int = 0
    mean_value: Tuple[float, ...] = ()      # B, G, R order (or one value for all channels)
    scale: float = 1.0
    mirror: bool = False
    phase: str = "TRAIN"
    ignore_label: int = 255

    @classmethod
    def from_params(cls, transform_param, phase, image_data_param=None):
        """From a TransformationParameter Message.  With ``image_data_param``, its deprecated
        crop_size, mirror and scale copies are used where transform_param does not set them,
        and its ignore_label is taken."""
        t = transform_param
        p = image_data_param
        fallback = (lambda name, default: p.get(name, default)) if p is not None else \
            (lambda name, default: default)
        return cls(crop_size=int(t.get("crop_size", fallback("crop_size", 0))),
                   mean_value=tuple(float(v) for v in t.getlist("mean_value")),
                   scale=float(t.get("scale", fallback("scale", 1.0))),
                   mirror=bool(t.get("mirror", fallback("mirror", False))),
                   phase=phase,
                   ignore_label=int(fallback("ignore_label", 255)))

    def means(self, channels):
        if not self.mean_value:
            return None
        if len(self.mean_value) == 1:
            return np.full(channels, self.mean_value[0], dtype=np.float32)
        if len(self.mean_value) != channels:
            raise CaffeError(f"transform_param: give 1 mean_value or one per channel ({channels}),"
                             f" got {len(self.mean_value)}")
        return np.asarray(self.mean_value, dtype=np.float32)

    def __call__(self, img, seg, rng):
        """img (H, W, C) uint8 BGR, seg (H, W) uint8 -> data (C, h, w) float32,
        label (1, h, w) float32 and the (rows, cols) of the image inside them before padding.

        rng: a numpy Generator; draws the mirror coin, then the crop offsets (TRAIN only)."""
        height, width, channels = img.shape
        means = self.means(channels)
        do_mirror = bool(self.mirror) and bool(rng.integers(0, 2))
        crop = int(self.crop_size)
        out_h, out_w = (crop, crop) if crop else (height, width)
        # Caffe pads the image to at least crop x crop (bottom/right) before choosing the
        # window; only the window is materialized here.
        full_h, full_w = max(height, out_h), max(width, out_w)
        h_off = w_off = 0
        if crop:
            if self.phase == "TRAIN":
                h_off = int(rng.integers(0, full_h - crop + 1))
                w_off = int(rng.integers(0, full_w - crop + 1))
            else:
                h_off, w_off = (full_h - crop) // 2, (full_w - crop) // 2
        rows, cols = min(height - h_off, out_h), min(width - w_off, out_w)
        data = np.empty((channels, out_h, out_w), np.float32)
        # Padding takes the mean colour, so it becomes 0 after the subtraction below.
        data[...] = (means if means is not None else np.zeros(channels, np.float32))[:, None, None]
        data[:, :rows, :cols] = img[h_off:h_off + rows, w_off:w_off + cols].transpose(2, 0, 1)
        # The C++ pads a uint8 label Mat with cv::Scalar(ignore_label): it saturates to 0..255.
        label = np.full((1, out_h, out_w), float(min(max(self.ignore_label, 0), 255)),
                        np.float32)
        label[0, :rows, :cols] = seg[h_off:h_off + rows, w_off:w_off + cols]
        if do_mirror:
            data = np.ascontiguousarray(data[:, :, ::-1])
            label = np.ascontiguousarray(label[:, :, ::-1])
        if means is not None:
            data -= means[:, None, None]
        data *= np.float32(self.scale)
        return data, label, (min(out_h, height), min(out_w, width))

    def image_from_data(self, data):
        """The 8-bit image back from a data blob this transform made (see image_from_data)."""
        means = self.means(data.shape[1])
        return image_from_data(data, means if means is not None else (0.0,) * data.shape[1],
                               self.scale)


def image_from_data(data, mean_bgr=DEEPLAB_MEAN_BGR, scale=1.0):
    """The 8-bit image back from a data blob (N, C, H, W) = (image - mean) * scale: divided by
    scale, the mean added, rounded and clamped to 0..255 (a float32 tensor, channels in blob
    order, B, G, R for DeepLab's data layers)."""
    mean = torch.as_tensor(mean_bgr, dtype=torch.float32, device=data.device).view(1, -1, 1, 1)
    return (data.detach().float() / float(scale) + mean).round_().clamp_(0, 255)
