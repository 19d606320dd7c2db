"""Caffe's DataTransformer (data_transformer.cpp) for BVLC's Data, ImageData and WindowData
layers: crop, mirror, mean subtraction and scale of one (C, H, W) sample, in Caffe's order.

Per sample: the mirror coin is drawn first (when mirror is set), then the crop offsets (when
crop_size is set): random in TRAIN (``Rand(H - crop + 1)`` for the rows, then the columns),
centred in TEST.  Each output value is ``(x - mean) * scale``, with mean the mean file's value
at the same (uncropped) position, or the channel's mean_value, or none.  A mean file must match
the sample's channels, height and width; mean_file and mean_value cannot both be given.  DeepLab's
TransformImgAndSeg (padding, label maps) is another rule and lives in ``data.transform``.

Mean files are BlobProto ``.binaryproto`` files as compute_image_mean writes them.
"""
import numpy as np

from ..errors import CaffeError
from ..io._files import decode_file
from ..io.blobs import blob_from_proto
from ..proto.schema import get_schema
from ..proto.wire import decode


def read_binaryproto(path):
    """The float32 array of a ``.binaryproto`` BlobProto file, in its stored shape (a legacy
    num/channels/height/width blob keeps its 4 axes)."""
    def parse(buf):
        proto = decode(buf, get_schema("bvlc"), "BlobProto")
        return blob_from_proto(proto, where=str(path), min_axes=4)[0].copy()
    return decode_file(path, parse)


LEGACY_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def layer_transform_param(spec, data_param_name):
    """A layer's transform_param.  For a V1 file, the deprecated scale/mean_file/crop_size/
    mirror of its ``data_param_name`` (data_param, image_data_param) are moved into it first,
    overriding, as Caffe's UpgradeNetDataTransformation does; a V2 file's are ignored."""
    t = spec.param_message("transform_param")
    if spec.dialect == "v2":
        return t
    legacy = spec.param_message(data_param_name)
    moved = {k: legacy.get(k) for k in LEGACY_TRANSFORM_FIELDS if legacy.has(k)}
    if not moved:
        return t
    t = t.copy()
    for k, v in moved.items():
        t[k] = v
    return t


class DataTransformer:
    """transform_param of a BVLC data layer.  ``rng``: a numpy Generator (its draws are
    Caffe's Rand(n))."""

    def __init__(self, transform_param, phase, rng=None):
        t = transform_param
        self.scale = float(t.get("scale", 1.0))
        self.mirror = bool(t.get("mirror", False))
        self.crop_size = int(t.get("crop_size", 0))
        self.force_color = bool(t.get("force_color", False))
        self.force_gray = bool(t.get("force_gray", False))
        self.mean_values = np.asarray(t.getlist("mean_value"), np.float32)
        self.phase = phase
        self.rng = rng if rng is not None else np.random.default_rng()
        mean_file = t.get("mean_file")
        if mean_file and self.mean_values.size:
            raise CaffeError("transform_param: cannot specify both mean_file and mean_value")
        self.mean = None
        if mean_file:
            m = read_binaryproto(mean_file)
            self.mean = m.reshape(m.shape[-3:]) if m.ndim >= 3 else m.reshape(1, 1, -1)

    def output_shape(self, chw):
        """(C, h, w) of a transformed sample of shape ``chw`` (Caffe's InferBlobShape)."""
        c, h, w = chw
        if self.crop_size:
            if h < self.crop_size or w < self.crop_size:
                raise CaffeError(f"transform_param.crop_size {self.crop_size} is larger than "
                                 f"the {h}x{w} input")
            return c, self.crop_size, self.crop_size
        return c, h, w

    def _means(self, c, h, w):
        if self.mean is not None:
            if self.mean.shape != (c, h, w):
                raise CaffeError(f"transform_param.mean_file has shape {self.mean.shape}, the "
                                 f"data is {(c, h, w)}")
            return self.mean
        if self.mean_values.size:
            if self.mean_values.size not in (1, c):
                raise CaffeError(f"transform_param: specify either 1 mean_value or as many as "
                                 f"channels ({c}), got {self.mean_values.size}")
            vals = np.broadcast_to(self.mean_values, (c,)) if self.mean_values.size == 1 \
                else self.mean_values
            return vals.reshape(c, 1, 1)
        return None

    def __call__(self, sample):
        """(C, H, W) uint8 or float -> (C, h, w) float32."""
        c, h, w = sample.shape
        out_c, out_h, out_w = self.output_shape((c, h, w))
        do_mirror = self.mirror and bool(self.rng.integers(0, 2))
        h_off = w_off = 0
        if self.crop_size:
            if self.phase == "TRAIN":
                h_off = int(self.rng.integers(0, h - self.crop_size + 1))
                w_off = int(self.rng.integers(0, w - self.crop_size + 1))
            else:
                h_off, w_off = (h - self.crop_size) // 2, (w - self.crop_size) // 2
        x = sample.astype(np.float32)
        means = self._means(c, h, w)
        if means is not None:
            x = x - means
        x = x[:, h_off:h_off + out_h, w_off:w_off + out_w]
        if do_mirror:
            x = x[:, :, ::-1]
        # Caffe computes (x - mean) * scale in float; a scale of 1 is still a multiply.
        return np.ascontiguousarray(x * np.float32(self.scale), np.float32)
