"""What a snapshot needs beyond Caffe's .solverstate to resume bit for bit.

Caffe's SolverState (binary or HDF5) holds iter, the weights file, the solver type's history
blobs and the multistep position.  A resumed Caffe run restarts its random streams and its data
layers from the top, so it does not repeat the uninterrupted run.  We also write
``<prefix>_iter_N.rngstate`` (JSON, data only: never a pickle) beside it with:
  * the torch CPU (and CUDA) generator states, numpy's and Python's global ones;
  * per net, the number of batches its data layers have served, and each ImageSegData layer's
    seed, so that restore puts every data layer at the batch it would have read next;
  * the average_loss window, so the printed smoothed loss continues too.
Without that file, restore still skips the data layers to the batches computed from iter
(iter * iter_size train batches, test_iter per test pass) and leaves the random streams alone.
"""
import base64
import json
import os
import random

import numpy as np
import torch

from ..errors import CaffeError
from ..io import read_solverstate
from ..io._files import atomic_write
from .data_position import batches_from_iter, data_layers, seek_data


FORMAT = "deeplab_caffe.rngstate"
VERSION = 2
MAX_BYTES = 64 << 20            # the real thing is ~20 KB plus the loss window
_TORCH_STATE_BYTES = torch.get_rng_state().numel()


def rngstate_path(solverstate_path):
    base = os.fspath(solverstate_path)
    for ext in (".solverstate", ".solverstate.h5"):
        if base.endswith(ext):
            return base[:-len(ext)] + ".rngstate"
    return base + ".rngstate"


def _b64(data):
    return base64.b64encode(bytes(data)).decode("ascii")


def capture(solver):
    """The side state as plain data (JSON-ready: numbers, strings, lists; the torch generator
    states as base64 bytes)."""
    nets = [solver.net] + list(solver.test_nets)
    np_key, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return {
        "format": FORMAT,
        "version": VERSION,
        "iter": int(solver.iter),
        "torch": _b64(torch.get_rng_state().numpy()),
        "cuda": None if cuda is None else [_b64(s.numpy()) for s in cuda],
        "numpy": {"key": np_key, "keys": _b64(np.asarray(np_keys, "<u4").tobytes()),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss),
                  "cached_gaussian": float(np_gauss)},
        "python": {"version": py_version, "state": list(py_state), "gauss_next": py_gauss},
        "batches": [int(b) for b in solver.batches_served],
        "seeds": [{n: getattr(l, "seed", None) for n, l in data_layers(net)} for net in nets],
        "losses": [float(x) for x in solver._losses],
        "smoothed_loss": float(solver.smoothed_loss),
        "loss_start": int(solver._loss_start),
    }


def write(path, state):
    with atomic_write(path) as f:
        f.write(json.dumps(state, allow_nan=True, separators=(",", ":")).encode("ascii"))


class RngStateError(CaffeError):
    """A .rngstate side file that is not ours, is damaged, or is an old pickle."""


def _want(cond, path, what):
    if not cond:
        raise RngStateError(f"{path}: {what}")


def _bytes(value, path, what, size=None):
    _want(isinstance(value, str), path, f"{what} is not a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except ValueError:
        raise RngStateError(f"{path}: {what} is not valid base64") from None
    _want(size is None or len(data) == size, path, f"{what} holds {len(data)} bytes, not {size}")
    return data


def _ints(value, path, what, n=None):
    _want(isinstance(value, list) and all(type(v) is int for v in value) and
          (n is None or len(value) == n), path,
          f"{what} is not a list of {n if n is not None else ''} integers".replace("  ", " "))
    return value


def read(path):
    """The side state written by ``write``, checked field by field.  Only JSON is parsed: an
    older pickle-format file (or anything else) is refused with RngStateError, never
    unpickled."""
    with open(path, "rb") as f:
        raw = f.read(MAX_BYTES + 1)
    _want(len(raw) <= MAX_BYTES, path, f"larger than {MAX_BYTES} bytes")
    if raw[:1] != b"{":
        raise RngStateError(f"{path}: not a JSON .rngstate (an older pickle-format side file is "
                            "refused: it could run code when loaded)")
    try:
        st = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise RngStateError(f"{path}: not valid JSON ({e})") from None
    _want(isinstance(st, dict) and st.get("format") == FORMAT, path, "not a .rngstate file")
    _want(st.get("version") == VERSION, path, f"version {st.get('version')!r}, not {VERSION}")
    torch_state = torch.frombuffer(bytearray(
        _bytes(st.get("torch"), path, "'torch'", _TORCH_STATE_BYTES)), dtype=torch.uint8)
    try:
        torch.Generator().set_state(torch_state)      # its own checks, on a scratch generator
    except RuntimeError as e:
        raise RngStateError(f"{path}: 'torch' is not a generator state ({e})") from None
    cuda = st.get("cuda")
    _want(cuda is None or isinstance(cuda, list), path, "'cuda' is not a list")
    cuda = None if cuda is None else [_bytes(c, path, "'cuda'") for c in cuda]
    npst = st.get("numpy")
    _want(isinstance(npst, dict) and npst.get("key") == "MT19937", path, "'numpy' is not an "
          "MT19937 state")
    keys = np.frombuffer(_bytes(npst.get("keys"), path, "'numpy.keys'", 624 * 4), "<u4")
    _ints([npst.get("pos"), npst.get("has_gauss")], path, "'numpy.pos/has_gauss'")
    # numpy takes any pos and would index its 624-word key with it
    _want(0 <= npst["pos"] <= 624 and npst["has_gauss"] in (0, 1), path,
          "'numpy.pos' is not in [0, 624] or 'numpy.has_gauss' not 0/1")
    _want(type(npst.get("cached_gaussian")) in (int, float), path, "'numpy.cached_gaussian' is "
          "not a number")
    pyst = st.get("python")
    _want(isinstance(pyst, dict) and pyst.get("version") == 3, path, "'python' is not a "
          "version-3 random state")
    _ints(pyst.get("state"), path, "'python.state'", 625)
    _want(all(0 <= w < 1 << 32 for w in pyst["state"][:624]) and
          0 <= pyst["state"][624] <= 624, path, "'python.state' is not an MT19937 state")
    gauss = pyst.get("gauss_next")
    _want(gauss is None or type(gauss) in (int, float), path, "'python.gauss_next' is not a "
          "number")
    _ints(st.get("batches"), path, "'batches'")
    seeds = st.get("seeds")
    _want(isinstance(seeds, list) and all(
        isinstance(s, dict) and all(v is None or type(v) is int for v in s.values())
        for s in seeds), path, "'seeds' is not a list of {layer: seed}")
    _want(isinstance(st.get("losses"), list) and all(
        type(x) in (int, float) for x in st["losses"]), path, "'losses' is not a list of numbers")
    _want(type(st.get("smoothed_loss")) in (int, float), path, "'smoothed_loss' is not a number")
    _ints([st.get("loss_start"), st.get("iter")], path, "'loss_start/iter'")
    return {
        "iter": st["iter"],
        "torch": torch_state,
        "cuda": None if cuda is None else [torch.frombuffer(bytearray(c), dtype=torch.uint8)
                                           for c in cuda],
        "numpy": ("MT19937", keys.astype(np.uint32), npst["pos"], npst["has_gauss"],
                  float(npst["cached_gaussian"])),
        "python": (3, tuple(pyst["state"]), gauss),
        "batches": st["batches"], "seeds": seeds, "losses": [float(x) for x in st["losses"]],
        "smoothed_loss": float(st["smoothed_loss"]), "loss_start": st["loss_start"],
    }


def apply_rng(state):
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        cuda = state["cuda"][:torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def restore(solver, path):
    """SGDSolver.restore: Caffe's RestoreSolverStateFromBinaryProto or ...FromHDF5 (the file's
    content decides) plus our .rngstate."""
    path = os.fspath(path)
    st = read_solverstate(path)
    params = solver._params
    if len(st.history) != len(solver.history):
        raise CaffeError(f"{path}: {len(st.history)} history blobs, but the net has "
                         f"{len(params)} learnable parameters and the solver type keeps "
                         f"{len(solver.history)} history blobs for them")
    for i in range(len(st.history)):
        p, _, _, layer, j = params[i % len(params)]
        if not st.shape_equals(i, tuple(p.shape)):
            raise CaffeError(f"{path}: history blob {i} ({layer} param {j}) has shape "
                             f"{st.disk_shapes[i]}, the parameter {tuple(p.shape)}")
    if st.learned_net:
        model = st.learned_net
        if not os.path.exists(model):
            # written relative to another working directory: look beside the .solverstate
            beside = os.path.join(os.path.dirname(path), os.path.basename(model))
            if not os.path.exists(beside):
                raise CaffeError(f"{path}: its weights file '{model}' is not found (nor beside"
                                 f" it, as {beside})")
            model = beside
        solver.net.copy_from(model)
    with torch.no_grad():
        for v, h in zip(solver.history, st.history):
            v.copy_(torch.from_numpy(h).reshape(v.shape))
    solver.iter, solver.current_step = int(st.iter), int(st.current_step)
    rng_file = rngstate_path(path)
    nets = [solver.net] + list(solver.test_nets)
    extra, why = None, f"{rng_file} not found"
    if os.path.exists(rng_file):
        try:
            extra = read(rng_file)
            apply_rng(extra)
        except (RngStateError, OSError, RuntimeError) as e:
            extra = None
            why = f"{e} (ignored)" if isinstance(e, RngStateError) else \
                f"{rng_file}: cannot restore: {getattr(e, 'strerror', None) or e} (ignored)"
    if extra is not None:
        if solver.rank > 0:
            # Only rank 0's streams are saved; the other ranks must still differ from it.
            torch.manual_seed(hash((int(extra["torch"].sum()), solver.rank)) % (1 << 62))
        solver.batches_served = list(extra["batches"])
        for net, n, seeds in zip(nets, solver.batches_served, extra["seeds"]):
            seek_data(net, n, seeds)
        solver._losses = list(extra["losses"])
        solver.smoothed_loss, solver._loss_start = extra["smoothed_loss"], extra["loss_start"]
        solver._carry_losses = True
    else:
        solver.log.warning("restore", f"{why}: random streams are not restored; data layers "
                           "skip to the batches implied by iter")
        solver.batches_served = batches_from_iter(solver, solver.iter)
        for net, n in zip(nets, solver.batches_served):
            seek_data(net, n)
    solver.last_snapshot = path
