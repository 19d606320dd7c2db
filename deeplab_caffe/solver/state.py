"""What a snapshot needs beyond Caffe's .solverstate to resume bit for bit.

Caffe's SolverState holds iter, the weights file, the momentum history and the multistep
position.  A resumed Caffe run restarts its random streams and its data layers from the top, so
it does not repeat the uninterrupted run.  We also write ``<prefix>_iter_N.rngstate`` (a torch
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

from ..data.image_seg_data import CaffeOrder
from ..errors import CaffeError
from ..io import read_solverstate


def rngstate_path(solverstate_path):
    base = os.fspath(solverstate_path)
    if base.endswith(".solverstate"):
        base = base[:-len(".solverstate")]
    return base + ".rngstate"


def data_layers(net):
    """(name, layer) for every layer that serves batches (no bottoms, a data type)."""
    kinds = ("ImageSegData", "MemoryData", "DummyData")
    return [(n, l) for n, l in zip(net.layer_names, net.layers) if l.type_name in kinds]


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


def seek_data(net, batches, seeds=None):
    """Put each data layer of ``net`` where it is after serving ``batches`` batches from setup."""
    seeds = seeds or {}
    for name, layer in data_layers(net):
        if layer.type_name == "ImageSegData":
            seed = seeds.get(name)
            if seed is not None:
                layer.seed = seed
            p = layer.param("image_data_param")
            base = CaffeOrder(len(layer.dataset), layer.batch_size,
                              shuffle=bool(p.get("shuffle", False)),
                              rand_skip=int(p.get("rand_skip", 0)), seed=layer.seed)
            for _ in range(batches):
                base.next_batch()
            shard = getattr(layer, "dc_shard", None)
            layer.order = ShardedOrder(base, *shard) if shard else base
            layer.close()
        elif layer.type_name == "MemoryData" and getattr(layer, "_data", None) is not None:
            layer._pos = (batches * layer.batch_size) % layer._data.shape[0]


def batches_from_iter(solver, iter):
    """Batches served by each net after ``iter`` updates in one uninterrupted run."""
    spec = solver.spec
    out = [iter * spec.iter_size]
    tests = 0
    if spec.test_interval:
        # Step tests at the top of the iteration, before the update: k = 0, ti, 2ti, ... < iter.
        tests = len([k for k in range(0, iter, spec.test_interval)
                     if k > 0 or spec.test_initialization])
    out += [tests * n for n in spec.test_iter]
    return out


class ShardedOrder:
    """Rank ``rank``'s slice of each batch of ``base`` (a CaffeOrder drawn with the same seed on
    every rank), so that the ranks together read exactly the one-process batch."""

    def __init__(self, base, rank, world_size):
        self.base, self.rank, self.world_size = base, rank, world_size
        self.batch_size = base.batch_size // world_size

    def next_batch(self):
        keys = self.base.next_batch()
        return keys[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]

    def __iter__(self):
        while True:
            yield self.next_batch()


def restore(solver, path):
    """SGDSolver.restore: Caffe's RestoreSolverStateFromBinaryProto plus our .rngstate."""
    path = os.fspath(path)
    st = read_solverstate(path)
    params = solver._params
    if len(st.history) != len(params):
        raise CaffeError(f"{path}: {len(st.history)} history blobs, but the net has "
                         f"{len(params)} learnable parameters")
    for i, (p, _, _, layer, j) in enumerate(params):
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
        for (p, *_), v, h in zip(params, solver.history, st.history):
            v.copy_(torch.from_numpy(h).reshape(p.shape))
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
