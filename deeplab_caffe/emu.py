"""The emulated-CUDA build: the project's CUDA kernels and their glue, compiled as C++ against the
HIP CPU runtime and run on CPU tensors (deeplab_caffe._emu, built by ``make emu``, ``make test``
and CI where the runtime is present).  Its ops, ``torch.ops.deeplab_caffe_emu.<op>``, have the
schemas of ``torch.ops.deeplab_caffe.<op>``; the tests compare them with the CPU twins bit for
bit, so the CUDA code runs on machines without a GPU.

The extension is loaded on the first call of :func:`available` (not on ``import deeplab_caffe``),
which registers the ops.
"""
import torch

ops = torch.ops.deeplab_caffe_emu

_state = {}


def _load():
    if "ext" not in _state:
        try:
            from . import _emu
            _state["ext"], _state["reason"] = _emu, None
        except ImportError as e:
            _state["ext"] = None
            _state["reason"] = (f"the emulated-CUDA extension deeplab_caffe._emu is not built or "
                                f"does not load ({e}); build it with `make emu`")
        else:
            from .ops.crf import register_filter_autograd
            register_filter_autograd("deeplab_caffe_emu")
    return _state["ext"]


def available():
    """True when deeplab_caffe._emu is built and loads (its ops are then registered)."""
    return _load() is not None


def reason():
    """Why the emulated build is unavailable, in one line (None when it is available)."""
    _load()
    return _state["reason"]


def runtime_stats():
    """Counters of the emulated CUDA runtime (launches run or captured, captures, graphs)."""
    if not available():
        raise RuntimeError(reason())
    return dict(_state["ext"].runtime_stats())


def reset_runtime_stats():
    if not available():
        raise RuntimeError(reason())
    _state["ext"].reset_runtime_stats()


class capture:
    """A caller's graph capture around emulated ops, as ``torch.cuda.graph`` is around CUDA ops:
    inside the block the current (emulated) stream is a side stream being captured, so kernels
    are recorded, not run; ``replay()`` runs them.  Memory allocated inside the block stays
    allocated while the graph lives (CUDA's graph pool), so replays may write into buffers the
    ops have already released.  For tests of the ops' behaviour inside a caller's capture."""

    def __init__(self):
        self.graph = None

    def __enter__(self):
        if not available():
            raise RuntimeError(reason())
        _state["ext"].capture_begin()
        return self

    def __exit__(self, *exc):
        self.graph = _state["ext"].capture_end()
        return False

    def replay(self):
        if self.graph is None:
            raise RuntimeError("capture.replay: the capture block has not ended")
        self.graph.replay()

    def held_allocations(self):
        """Buffers allocated inside the block, released since, and kept for the replays."""
        return self.graph.held_allocations()
