"""Two gloo CPU ranks, each reading half of every batch, end where one process on the whole
batch ends (gradients averaged over the ranks)."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import deeplab_caffe as dc
from deeplab_caffe.solver import distributed

SOLVER = ('lr_policy: "step"\nbase_lr: 0.05\ngamma: 0.5\nstepsize: 2\nmomentum: 0.9\n'
          'weight_decay: 0.01\nmax_iter: 4\niter_size: 2\n')


def _worker(rank, world, tmp, init_method):
    from pathlib import Path
    from solver_util import dataset, make_solver
    distributed.init_process_group(rank, world, "cpu", init_method)
    folder = Path(tmp) / f"r{rank}"
    folder.mkdir()
    # A different seed per rank: the weights must come from rank 0's broadcast.
    s = make_solver(folder, SOLVER, seed=rank + 10, rank=rank, world_size=world)
    distributed.attach(s)
    s.net.layer("data").set_input_arrays(*dataset())
    assert s.net.layer("data").batch_size == 2
    s.step(4)
    if rank == 0:
        torch.save([p.detach() for p, *_ in s.net.learnable_params()], f"{tmp}/dist.pt")
    dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process(tmp_path):
    from solver_util import make_solver
    one = make_solver(tmp_path, SOLVER, seed=10)      # rank 0's initial weights
    one.step(4)
    mp.spawn(_worker, args=(2, str(tmp_path), f"tcp://127.0.0.1:{distributed.free_port()}"),
             nprocs=2, join=True)
    got = torch.load(tmp_path / "dist.pt")
    for (p, *_), q in zip(one.net.learnable_params(), got):
        torch.testing.assert_close(q, p.detach(), rtol=1e-6, atol=1e-7)
    # and the run really moved the weights
    (tmp_path / "f").mkdir()
    fresh = make_solver(tmp_path / "f", SOLVER, seed=10)
    assert not torch.allclose(fresh.net.params["ip"][0], got[0])


def test_spawned_entry_runs_in_a_spawned_process(tmp_path):
    # What train_net spawns per rank must be importable there; a rank's CaffeError exits 2.
    from types import SimpleNamespace
    from deeplab_caffe.solver.run import spawned
    (tmp_path / "s.prototxt").write_text('net: "n.prototxt"\nbase_lr: 0.1\nlr_policy: "foo"\n')
    args = SimpleNamespace(solver=str(tmp_path / "s.prototxt"), defines={}, log=None)
    with pytest.raises(mp.ProcessExitedException, match="exit code 2") as e:
        mp.spawn(spawned, args=(args, ["cpu"], None), nprocs=1, join=True)
    assert e.value.exit_code == 2


def test_memory_data_batch_must_split():
    class FakeLayer:
        batch_size, name = 3, "data"

        def set_input_arrays(self, d, l):
            pass
    layer = FakeLayer()
    with pytest.raises(dc.CaffeError, match="does not split over 2 ranks"):
        distributed._shard_memory_data(layer, 0, 2)


def test_buckets_cover_everything():
    ts = [torch.zeros(3), torch.zeros(10), torch.zeros(2)]
    old, distributed.BUCKET_BYTES = distributed.BUCKET_BYTES, 40
    try:
        groups = list(distributed._buckets(ts))
    finally:
        distributed.BUCKET_BYTES = old
    assert [len(g) for g in groups] == [2, 1]
    assert [t for g in groups for t in g] == ts
