"""Caffe's Datum (one record of an LMDB / LevelDB): decode, encode, and the image it holds.

A Datum holds either raw pixels (``data``: uint8 bytes in C x H x W order, BGR for colour
images, as convert_imageset writes them), float values (``float_data``, used when ``data`` is
empty), or an encoded image file (``encoded: true``: the bytes of a JPEG/PNG file).  Encoded
images are decoded with PIL (Caffe uses OpenCV's imdecode); colour comes back BGR like OpenCV,
grey goes through ``data.opencv``'s IMREAD_GRAYSCALE reproduction.
"""
import io

import numpy as np
from PIL import Image

from ..errors import CaffeError
from ..proto.message import Message
from ..proto.schema import get_schema
from ..proto.wire import decode
from ..proto.wire_encode import encode
from .opencv import ask_decoder_for_grey, grey_from_decoder


def decode_datum(buf, where="Datum"):
    """A Datum Message from its serialized bytes."""
    try:
        return decode(bytes(buf), get_schema("bvlc"), "Datum")
    except CaffeError as e:
        raise CaffeError(f"{where}: not a Datum ({e})") from None


def encode_datum(datum):
    return encode(datum, get_schema("bvlc"), "Datum")


def datum_from_array(array, label=0):
    """A raw Datum from (C, H, W) uint8 (``data``) or float (``float_data``) values."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise CaffeError(f"a Datum holds a (C, H, W) array, got shape {array.shape}")
    c, h, w = array.shape
    fields = {"channels": c, "height": h, "width": w, "label": int(label)}
    if array.dtype == np.uint8:
        fields["data"] = np.ascontiguousarray(array).tobytes()
    else:
        fields["float_data"] = np.ascontiguousarray(array, np.float32).reshape(-1)
    return Message("Datum", fields)


def datum_from_encoded(file_bytes, label=0):
    """An encoded Datum holding an image file's bytes (convert_imageset --encoded)."""
    return Message("Datum", {"data": bytes(file_bytes), "label": int(label), "encoded": True})


def decode_image_bytes(file_bytes, is_color=None, where="Datum"):
    """(H, W, C) uint8 of an image file's bytes, as OpenCV's imdecode gives it: BGR.
    is_color None keeps the file's own channels (DecodeDatumToCVMatNative's IMREAD_UNCHANGED:
    grey stays 1 channel, RGBA gives BGRA);
    True forces 3 channels, False forces grey (DecodeDatumToCVMat's force_color/force_gray)."""
    try:
        img = Image.open(io.BytesIO(bytes(file_bytes)))
        if is_color is False:
            ask_decoder_for_grey(img)
        img.load()
    except OSError as e:
        raise CaffeError(f"{where}: cannot decode the encoded image ({e})") from None
    if is_color is False or (is_color is None and img.mode in ("L", "LA", "I", "I;16")):
        return grey_from_decoder(img)[:, :, None]
    if is_color is None and img.mode == "RGBA":
        # IMREAD_UNCHANGED keeps the alpha channel: BGRA
        rgba = np.asarray(img, np.uint8)
        return np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"), np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def datum_array(datum, force_color=False, force_gray=False, where="Datum"):
    """(C, H, W) values of a Datum: uint8 for pixels (raw or decoded), float32 for float_data.
    force_color / force_gray apply to encoded datums only, as in Caffe's DataTransformer."""
    if datum.get("encoded", False):
        if force_color and force_gray:
            raise CaffeError("transform_param: force_color and force_gray cannot both be set")
        is_color = True if force_color else (False if force_gray else None)
        return decode_image_bytes(datum.get("data", b""), is_color, where).transpose(2, 0, 1)
    c, h, w = (int(datum.get(k, 0)) for k in ("channels", "height", "width"))
    raw = datum.get("data", b"")
    if raw:
        if len(raw) != c * h * w:
            raise CaffeError(f"{where}: {len(raw)} bytes of data for channels {c}, height {h}, "
                             f"width {w}")
        return np.frombuffer(raw, np.uint8).reshape(c, h, w)
    values = datum.get("float_data")
    values = np.zeros(0, np.float32) if values is None else np.asarray(values, np.float32)
    if values.size != c * h * w:
        raise CaffeError(f"{where}: {values.size} float_data values for channels {c}, height "
                         f"{h}, width {w}")
    return values.reshape(c, h, w)
