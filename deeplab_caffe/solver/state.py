"""What a snapshot needs beyond Caffe's .solverstate to resume bit for bit.

Caffe's SolverState (binary or HDF5) holds iter, the weights file, the solver type's history
blobs and the multistep position.  A resumed Caffe run restarts its random streams and its data
layers from the top, so it does not repeat the uninterrupted run.  We also write ``<prefix>_iter_N.rngstate`` (a torch
pickle) beside it with:
  * the torch CPU (and CUDA) generator states, numpy's and Python's global ones;
  * per net, the number of batches its data layers have served, and each ImageSegData layer's
    seed, so that restore puts every data layer at the batch it would have read next;
  * the average_loss window, so the printed smoothed loss continues too.
Without that file, restore still skips the data layers to the batches computed from iter
(iter * iter_size train batches, test_iter per test pass) and leaves the random streams alone.
"""
import os
import random

import numpy as np
import torch

from ..errors import CaffeError
from ..io import read_solverstate
from .data_position import batches_from_iter, data_layers, seek_data


def rngstate_path(solverstate_path):
    base = os.fspath(solverstate_path)
    for ext in (".solverstate", ".solverstate.h5"):
        if base.endswith(ext):
            return base[:-len(ext)] + ".rngstate"
    return base + ".rngstate"


def capture(solver):
    nets = [solver.net] + list(solver.test_nets)
    return {
        "version": 1,
        "iter": solver.iter,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "batches": list(solver.batches_served),
        "seeds": [{n: getattr(l, "seed", None) for n, l in data_layers(net)} for net in nets],
        "losses": list(solver._losses),
        "smoothed_loss": solver.smoothed_loss,
        "loss_start": solver._loss_start,
    }


def write(path, state):
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read(path):
    return torch.load(path, map_location="cpu", weights_only=False)


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
    if os.path.exists(rng_file):
        extra = read(rng_file)
        apply_rng(extra)
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
        solver.log.warning("restore", f"{rng_file} not found: random streams are not restored;"
                           " data layers skip to the batches implied by iter")
        solver.batches_served = batches_from_iter(solver, solver.iter)
        for net, n in zip(nets, solver.batches_served):
            seek_data(net, n)
    solver.last_snapshot = path
