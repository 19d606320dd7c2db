"""BlobProto <-> numpy, with Caffe's shape rules.

A modern blob carries ``shape { dim }``.  A legacy (V1-era) blob carries num/channels/height/width,
which Caffe aligns *from the end* (``Blob::ShapeEquals`` / ``LegacyShape``): an InnerProduct
weight stored as (1, 1, N, K) matches a (N, K) blob, a bias (1, 1, 1, N) matches (N,).  The
reader therefore drops leading 1s down to the number of axes the layer's blob really has:
4 for Convolution/Deconvolution weights, 2 for InnerProduct weights, 1 otherwise.  The shape as
stored stays available (``disk_shape``) for exact ``ShapeEquals`` checks.
"""
import numpy as np

from ..errors import CaffeError, WireError
from ..proto.message import Message

_WEIGHT_AXES = {"Convolution": 4, "Deconvolution": 4, "InnerProduct": 2}
MAX_AXES = 32             # Caffe's kMaxBlobAxes (blob.hpp): Blob::Reshape CHECKs it
_MAX_COUNT = (1 << 63) - 1


def _bad(reason, where):
    err = WireError(f"{where}: {reason}")
    err.field_path = where
    return err


def legacy_axes(layer_type, index):
    """How many axes blob ``index`` of a ``layer_type`` layer has when stored legacy 4-D."""
    return _WEIGHT_AXES.get(layer_type, 1) if index == 0 else 1


def blob_from_proto(proto, where="BlobProto", min_axes=1):
    """(float32 array in Caffe's shape, disk_shape tuple, legacy flag) of a decoded BlobProto.

    Raises WireError when the element count does not match the shape (as Caffe's FromProto
    CHECKs do), naming ``where`` (e.g. "NetParameter.layer[3].blobs[0]")."""
    legacy = any(proto.has(k) for k in ("num", "channels", "height", "width"))
    if legacy:
        disk = tuple(int(proto.get(k, 0)) for k in ("num", "channels", "height", "width"))
    else:
        shape_msg = proto.get("shape")
        disk = tuple(int(d) for d in (shape_msg.getlist("dim") if shape_msg is not None else []))
    if len(disk) > MAX_AXES:
        raise _bad(f"{len(disk)} dimensions in a blob shape; Caffe allows at most {MAX_AXES} "
                   f"(kMaxBlobAxes)", where)
    if any(d < 0 for d in disk):
        raise _bad(f"negative dimension in shape {disk}", where)
    count = 1
    for d in disk:
        count *= d
        if count > _MAX_COUNT:
            raise _bad(f"shape {disk} has more than 2^63-1 elements", where)
    data = proto.get("double_data")
    if data is None or len(data) == 0:
        data = proto.get("data")
        if data is None:
            data = np.zeros(0, np.float32)
    if not isinstance(data, np.ndarray):
        data = np.asarray(data, np.float32)
    if data.size != count:
        raise _bad(f"{data.size} values for shape {disk} ({count} expected)", where)
    shape = disk
    if legacy:
        while len(shape) > max(min_axes, 1) and shape[0] == 1:
            shape = shape[1:]
    if data.dtype != np.float32:
        data = data.astype(np.float32)
    return data.reshape(shape), disk, legacy


def legacy_shape(shape):
    """(num, channels, height, width) of an array of at most 4 axes, aligned from the end."""
    shape = tuple(int(d) for d in shape)
    if len(shape) > 4:
        raise CaffeError(f"a legacy (V1) blob has at most 4 axes; shape {shape} has {len(shape)}")
    return (1,) * (4 - len(shape)) + shape


def blob_to_proto(array, legacy=False, diff=None):
    """A BlobProto holding ``array`` as float32 data (and ``diff``, when given, as its diff:
    Blob::ToProto with write_diff): BlobShape dims, or legacy 4-D."""
    array = as_float32(array)
    if legacy:
        n, c, h, w = legacy_shape(array.shape)
        fields = {"num": n, "channels": c, "height": h, "width": w}
    elif array.ndim == 0:
        # Caffe's Blob::ToProto only touches ``shape`` to add dims: a 0-axis blob (PReLU's
        # channel_shared slope, a scalar Scale) is written with no shape at all.
        fields = {}
    else:
        fields = {"shape": Message("BlobShape", {"dim": [int(d) for d in array.shape]})}
    fields["data"] = array.reshape(-1)
    if diff is not None:
        fields["diff"] = as_float32(diff).reshape(-1)
    return Message("BlobProto", fields)


def as_float32(x):
    """A C-contiguous float32 numpy array of a numpy array, a torch tensor or a nested list."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    # ascontiguousarray turns a 0-d array into a 1-element 1-d one; keep the 0 axes.
    return np.ascontiguousarray(x).reshape(x.shape)


def shape_equals(target_shape, disk_shape, legacy):
    """Caffe's ``Blob::ShapeEquals``: may a stored blob be copied into a ``target_shape`` blob?

    Legacy dims are compared from the end, with missing target axes counting as 1."""
    target = tuple(int(d) for d in target_shape)
    if not legacy:
        return target == tuple(disk_shape)
    if len(target) > 4:
        return False
    return legacy_shape(target) == tuple(disk_shape)


def require_blobs(layer_name, blobs):
    """Refuse a blob list with holes (None): an HDF5 weights file keeps a shared blob under its
    owner layer only, and the other formats have no way to leave one out."""
    missing = [i for i, b in enumerate(blobs) if b is None]
    if missing:
        raise CaffeError(f"layer '{layer_name}' has no blob {missing[0]} (an HDF5 weights file "
                         "stores a blob shared by param { name } under its owner only); load "
                         "it into a Net and save that instead")
def read_blob_proto_file(path):
    """A binary BlobProto file (Caffe's .binaryproto: mean files, infogain matrices) as a
    float32 array in its stored shape (ReadProtoFromBinaryFile + Blob::FromProto)."""
    import os

    from ..proto import wire
    from ..proto.schema import get_schema
    from ._files import decode_file
    path = os.fspath(path)

    def decode(buf):
        msg = wire.Decoder(get_schema("bvlc")).decode(buf, "BlobProto")
        return blob_from_proto(msg, path, min_axes=4)[0].copy()
    return decode_file(path, decode)
