"""Read and write .solverstate files (Caffe's SolverState: iter, learned_net, history,
current_step), as a binary proto or, in Caffe's HDF5 layout, as a .solverstate.h5 (``hdf5.py``).
``history`` holds the solver type's history blobs in Caffe's history_ order: one per learnable
parameter (Caffe's ``learnable_params`` order) for SGD, Nesterov, AdaGrad and RMSProp; two sets
of them, the first slot's n blobs then the second's, for AdaDelta and Adam."""
import os

from ..errors import CaffeError
from ..proto import wire
from ..proto.message import Message
from ..proto.schema import get_schema
from ._files import atomic_write, decode_file
from .blobs import as_float32, blob_from_proto, blob_to_proto, shape_equals
from .hdf5 import is_hdf5, read_solverstate_h5, write_solverstate_h5


class SolverState:
    """iter (int), learned_net (str: the .caffemodel written with it), history (list of float32
    arrays), current_step (int, the multistep lr policy's position), and per history blob the
    shape as stored and whether it was legacy 4-D (``disk_shapes``, ``legacy``).

    Legacy history blobs come back with their leading 1s dropped (a bias (1,1,1,N) as (N,)).
    Caffe matches them to parameters by ShapeEquals (``shape_equals(i, param_shape)``) and then
    uses the parameter's shape."""

    def __init__(self, iter=0, learned_net="", history=(), current_step=0, disk_shapes=None,
                 legacy=None, message=None):
        self.iter, self.learned_net, self.current_step = iter, learned_net, current_step
        self.history = list(history)
        self.disk_shapes = list(disk_shapes) if disk_shapes is not None else \
            [tuple(h.shape) for h in self.history]
        self.legacy = list(legacy) if legacy is not None else [False] * len(self.history)
        self.message = message

    def shape_equals(self, i, target_shape):
        return shape_equals(target_shape, self.disk_shapes[i], self.legacy[i])

    def __repr__(self):
        return (f"SolverState(iter={self.iter}, learned_net={self.learned_net!r}, "
                f"{len(self.history)} history blobs, current_step={self.current_step})")


def decode_solverstate(buf, source="<bytes>", copy_arrays=True):
    # BVLC's table: its BlobProto is a superset of DeepLab v1's, and SolverState is the same.
    msg = wire.Decoder(get_schema("bvlc"), copy_arrays=copy_arrays).decode(buf, "SolverState")
    history, disk, legacy = [], [], []
    for i, bp in enumerate(msg.getlist("history")):
        arr, d, leg = blob_from_proto(bp, f"SolverState.history[{i}]")
        history.append(arr)
        disk.append(d)
        legacy.append(leg)
    msg.fields.pop("history", None)
    return SolverState(int(msg.get("iter", 0)), msg.get("learned_net", ""), history,
                       int(msg.get("current_step", 0)), disk, legacy, msg)


def read_solverstate(path):
    """Read a .solverstate (or .solverstate.h5, told by its content) written by Caffe (BVLC or
    DeepLab v1) or by ``write_solverstate``."""
    path = os.fspath(path)
    if is_hdf5(path):
        return read_solverstate_h5(path)
    return decode_file(path, lambda buf: decode_solverstate(buf, path, copy_arrays=False))


def write_solverstate(path, iter, learned_net, history, current_step=0, format="v2",
                      fsync=True):
    """Write a SolverState.  history: arrays or tensors in Caffe's history_ order.
    format "v2" stores BlobShape dims (BVLC Caffe); "v1" legacy 4-D num/channels/height/width
    (what DeepLab v1's Caffe reads: its BlobProto has no shape field); "hdf5" BVLC's HDF5
    layout (snapshot_format: HDF5)."""
    if format not in ("v1", "v2", "hdf5"):
        raise CaffeError(f"format must be 'v1', 'v2' or 'hdf5', got {format!r}")
    if format == "hdf5":
        return write_solverstate_h5(path, iter, learned_net, history, current_step, fsync)
    fields = {"iter": int(iter), "learned_net": os.fspath(learned_net),
              "history": [blob_to_proto(as_float32(h), format == "v1") for h in history]}
    if current_step:
        fields["current_step"] = int(current_step)
    encoder = wire.Encoder(get_schema("bvlc"))
    with atomic_write(path, fsync) as f:
        encoder.write(f, Message("SolverState", fields))
