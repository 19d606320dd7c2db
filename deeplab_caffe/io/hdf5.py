"""Caffe's HDF5 snapshots (``snapshot_format: HDF5``), read and written with h5py in the layout
BVLC Caffe's own code uses, so that either side reads the other's files:

``<prefix>_iter_N.caffemodel.h5`` (Net::ToHDF5 / CopyTrainedLayersFromHDF5)
    group ``data``, in it one group per layer (every layer, with or without blobs), in it one
    float32 dataset per blob named by its index ("0", "1", ...) with the blob's shape; a blob
    shared from an earlier layer (``param { name }``) is written only by its owner.  With
    snapshot_diff Caffe adds a ``diff`` group of the same layout, which readers ignore.
``<prefix>_iter_N.solverstate.h5`` (SnapshotSolverStateToHDF5 / RestoreSolverStateFromHDF5)
    ``iter`` and ``current_step``: int32 datasets of shape (1,) (H5LTmake_dataset_int);
    ``learned_net``: a scalar fixed-length, NUL-terminated string (H5LTmake_dataset_string);
    group ``history`` with float32 datasets "0" .. "N-1" in Caffe's history_ order.

Readers take float or integer datasets (Caffe's hdf5_load_nd_dataset accepts both classes and
converts to float).  h5py is imported only when an HDF5 file is read or written.
"""
import os

import numpy as np

from ..errors import CaffeError
from ._files import atomic_write
from .blobs import as_float32

SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path):
    """H5Fis_hdf5: the HDF5 signature at offset 0, 512, 1024, 2048, ... (where a superblock may
    sit after a user block)."""
    try:
        with open(path, "rb") as f:
            size, offset = os.fstat(f.fileno()).st_size, 0
            while offset + len(SIGNATURE) <= size:
                f.seek(offset)
                if f.read(len(SIGNATURE)) == SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def _h5py():
    try:
        import h5py
    except ImportError:
        raise CaffeError("HDF5 snapshots need the h5py package (pip install h5py)") from None
    return h5py


def _open(path):
    h5py = _h5py()
    try:
        return h5py.File(os.fspath(path), "r")
    except OSError as e:
        raise CaffeError(f"{path}: cannot open as HDF5: {e}") from None


def _float_blob(dataset, where):
    kind = dataset.dtype.kind
    if kind not in "fiu":
        raise CaffeError(f"{where}: dataset of type {dataset.dtype} (Caffe reads float or "
                         "integer datasets only)")
    return np.ascontiguousarray(dataset[()], dtype=np.float32).reshape(dataset.shape)


def _indexed_blobs(group, where):
    """{index: float32 array} of the datasets "0", "1", ... of a group."""
    blobs = {}
    for name in group:
        if not name.isdigit() or not hasattr(group[name], "dtype"):
            raise CaffeError(f"{where}/{name}: expected datasets named 0, 1, ... only")
        blobs[int(name)] = _float_blob(group[name], f"{where}/{name}")
    return blobs


def read_caffemodel_h5(path):
    """A CaffeModel (``.format == "hdf5"``, layer types "") from a .caffemodel.h5.  Each layer's
    ``blobs`` list has None where the file has no dataset for that index (a shared blob that
    Caffe writes only under its owner layer)."""
    from .caffemodel import CaffeLayer, CaffeModel
    path = os.fspath(path)
    with _open(path) as f:
        if "data" not in f:
            raise CaffeError(f"{path}: no 'data' group (not a Caffe HDF5 weights file)")
        layers = []
        for name in f["data"]:      # name order, as Caffe's H5_INDEX_NAME walk
            blobs = _indexed_blobs(f["data"][name], f"{path}:data/{name}")
            n = max(blobs) + 1 if blobs else 0
            arrays = [blobs.get(i) for i in range(n)]
            layers.append(CaffeLayer(name, "", arrays, disk_shapes=[
                None if a is None else a.shape for a in arrays]))
    return CaffeModel("", layers, "hdf5", "", "HDF5 weights", path)


def check_layer_names(names, where):
    """Every layer gets a group named after it: Caffe's ToHDF5 crashes on a repeated name
    (BVLC issue 2885; unnamed layers all are "") and on a name with '/', which HDF5 reads as a
    path (issue 4267: GoogLeNet's "conv1/7x7_s2"), or nests the group into another layer's
    where that prefix is a layer too.  Refuse both, naming the layer."""
    seen = set()
    for name in names:
        if name in seen:
            raise CaffeError(f"{where}: two layers are named '{name}'; Caffe's HDF5 weights "
                             "layout has one group per layer name (use snapshot_format: "
                             "BINARYPROTO, or rename one)")
        if "/" in name or name in (".", ""):
            raise CaffeError(f"{where}: layer '{name}' cannot be an HDF5 group name ('/' makes "
                             "a path; Caffe fails here too): use snapshot_format: BINARYPROTO, "
                             "or rename the layer")
        seen.add(name)


def write_caffemodel_h5(path, layers, fsync=True):
    """Write Net::ToHDF5's layout.  layers: in net order, objects with .name and .blobs (a blob
    None where the layer does not own it, so that no dataset is written for it) and optionally
    .diffs, every blob's diff (snapshot_diff: written under ``diff`` whether shared or not)."""
    h5py = _h5py()
    check_layer_names([layer.name for layer in layers], path)
    with atomic_write(path, fsync, mode="w+b") as fobj, h5py.File(fobj, "w") as f:
        data = f.create_group("data")
        for layer in layers:
            _write_blobs(data.create_group(layer.name), layer.blobs)
            diffs = getattr(layer, "diffs", None)
            if diffs is not None:
                _write_blobs(f.require_group("diff").create_group(layer.name), diffs)


def _write_blobs(group, blobs):
    for i, blob in enumerate(blobs):
        if blob is not None:
            group.create_dataset(str(i), data=as_float32(blob))


def _write_int(f, name, value):
    f.create_dataset(name, data=np.array([int(value)], dtype=np.int32))


def _write_string(f, name, text):
    """H5LTmake_dataset_string: a scalar, NUL-terminated string of strlen + 1 bytes (Caffe's
    hdf5_load_string reads it into a C string, so the NUL must be there)."""
    h5py = _h5py()
    raw = os.fsencode(text) + b"\0"
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(raw))
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    ds = h5py.h5d.create(f.id, name.encode(), tid, space)
    ds.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw, dtype=f"S{len(raw)}"), mtype=tid)


def write_solverstate_h5(path, iter, learned_net, history, current_step=0, fsync=True):
    """Write SnapshotSolverStateToHDF5's layout; history: arrays or tensors in Caffe's
    history_ order."""
    h5py = _h5py()
    with atomic_write(path, fsync, mode="w+b") as fobj, h5py.File(fobj, "w") as f:
        _write_int(f, "iter", iter)
        _write_string(f, "learned_net", os.fspath(learned_net))
        _write_int(f, "current_step", current_step)
        group = f.create_group("history")
        for i, h in enumerate(history):
            group.create_dataset(str(i), data=as_float32(h))


def _read_int(f, name, path):
    values = np.asarray(f[name][()]).reshape(-1)
    if values.size != 1 or values.dtype.kind not in "iu":
        raise CaffeError(f"{path}: '{name}' must hold one integer, got {values!r}")
    return int(values[0])


def read_solverstate_h5(path):
    """A SolverState from a .solverstate.h5 (``learned_net`` "" when the file has none, as
    Caffe's restore then copies no weights)."""
    from .solverstate import SolverState
    path = os.fspath(path)
    with _open(path) as f:
        for need in ("iter", "current_step", "history"):
            if need not in f:
                raise CaffeError(f"{path}: no '{need}' (not a Caffe HDF5 solver state)")
        learned = ""
        if "learned_net" in f:
            value = f["learned_net"][()]
            learned = os.fsdecode(value.rstrip(b"\0")) if isinstance(value, bytes) else str(value)
        blobs = _indexed_blobs(f["history"], f"{path}:history")
        if sorted(blobs) != list(range(len(blobs))):
            raise CaffeError(f"{path}: history datasets {sorted(blobs)} are not 0 .. "
                             f"{len(blobs) - 1}")
        history = [blobs[i] for i in range(len(blobs))]
        return SolverState(_read_int(f, "iter", path), learned, history,
                           _read_int(f, "current_step", path))
