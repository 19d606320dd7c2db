"""Training on several GPUs (or CPU processes) with torch.distributed, Caffe-multi-GPU style.

Each rank runs its own SGDSolver on its own device.  The solver file's batch is split over the
ranks: every rank draws the same sample order (the data layer's seed is broadcast from rank 0)
and reads its slice of each batch, so the ranks together see exactly the one-process batch.
After the iter_size forward/backward passes the gradients are summed over the ranks (one
all-reduce per bucket, as DistributedDataParallel does) and divided by the number of ranks, so
with a per-sample-mean loss the update equals the one-process update on the whole batch.  The
weights are broadcast from rank 0 at the start.  Only rank 0 logs, tests and snapshots; signals
are agreed on by all ranks (the strongest request wins) so that they stop together.

    solver = SGDSolver(path, device=f"cuda:{rank}", rank=rank, world_size=world)
    distributed.attach(solver)       # after init_process_group, before the first step
"""
import os

import torch
import torch.distributed as dist

from ..errors import CaffeError
from .data_position import data_layers, seek_data

BUCKET_BYTES = 25 * 1024 * 1024
_ACTIONS = ("none", "snapshot", "stop")


def init_process_group(rank, world_size, device, init_method=None):
    """NCCL for CUDA devices, gloo for CPU.  init_method None: env:// (torchrun)."""
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend, init_method=init_method or "env://", rank=rank,
                            world_size=world_size)


def destroy():
    if dist.is_initialized():
        dist.destroy_process_group()


def _buckets(tensors):
    bucket, size = [], 0
    for t in tensors:
        bucket.append(t)
        size += t.numel() * t.element_size()
        if size >= BUCKET_BYTES:
            yield bucket
            bucket, size = [], 0
    if bucket:
        yield bucket


def average_gradients(solver, loss):
    """SGDSolver.after_backward hook: mean of every learnable gradient and of the loss."""
    world = dist.get_world_size()
    params = [p for p, *_ in solver._params]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    for bucket in _buckets([p.grad for p in params]):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        flat.div_(world)
        offset = 0
        for g in bucket:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n
    dev = params[0].device if params else torch.device("cpu")
    t = torch.tensor([loss], dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return float(t.item()) / world


def agreed_action(local):
    """An action_request for all ranks: the strongest of the ranks' requests."""
    def request():
        code = _ACTIONS.index(local() if local is not None else "none")
        dev = "cuda" if dist.get_backend() == "nccl" else "cpu"
        t = torch.tensor([code], dtype=torch.int64, device=dev)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return _ACTIONS[int(t.item())]
    return request


def shard_data_layers(net, rank, world_size):
    """Give rank ``rank`` its slice of every batch of ``net``'s data layers."""
    for name, layer in data_layers(net):
        if layer.type_name == "ImageSegData":
            if layer.batch_size % world_size:
                raise CaffeError(f"layer '{name}': batch_size {layer.batch_size} does not split "
                                 f"over {world_size} ranks")
            seed = torch.tensor([layer.seed], dtype=torch.int64)
            if dist.get_backend() == "nccl":
                seed = seed.cuda()
            dist.broadcast(seed, 0)
            layer.seed = int(seed.item())
            layer.dc_shard = (rank, world_size)
            seek_data(net, 0, {name: layer.seed})
        elif layer.type_name == "MemoryData":
            _shard_memory_data(layer, rank, world_size)


def _shard_memory_data(layer, rank, world):
    full = layer.batch_size
    if full % world:
        raise CaffeError(f"layer '{layer.name}': batch_size {full} does not split over {world} "
                         "ranks")
    b = full // world
    original = layer.set_input_arrays

    def set_input_arrays(data, labels):
        data, labels = torch.as_tensor(data), torch.as_tensor(labels)
        n = data.shape[0]
        if n % full:
            raise CaffeError(f"layer '{layer.name}': {n} samples are not a multiple of "
                             f"batch_size {full}")
        data = data.reshape(n // full, full, *data.shape[1:])[:, rank * b:(rank + 1) * b]
        labels = labels.reshape(n // full, full, *labels.shape[1:])[:, rank * b:(rank + 1) * b]
        layer.batch_size = b
        original(data.reshape(-1, *data.shape[2:]), labels.reshape(-1, *labels.shape[2:]))

    layer.set_input_arrays = set_input_arrays


def attach(solver):
    """Make ``solver`` one rank of the process group (call before the first step)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    if (solver.rank, solver.world_size) != (rank, world):
        raise CaffeError(f"solver built for rank {solver.rank}/{solver.world_size}, process "
                         f"group is {rank}/{world}")
    with torch.no_grad():
        for p, *_ in solver._params:
            dist.broadcast(p.data, 0)
    shard_data_layers(solver.net, rank, world)
    solver.after_backward = average_gradients
    solver.action_request = agreed_action(solver.action_request)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_rank():
    """(rank, world_size, local_rank) from torchrun's environment, or None."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ:
        return (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                int(os.environ.get("LOCAL_RANK", os.environ["RANK"])))
    return None
