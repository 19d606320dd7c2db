#!/usr/bin/env python3
"""Train a net like `caffe train`.

    python tools/train_net.py --solver S.prototxt [--weights a.caffemodel[,b.caffemodel] |
                              --snapshot X.solverstate] [--gpu 0 | 0,1 | all | -1]
                              [--define KEY=VALUE ...] [--iterations N] [--level L]
                              [--stage S ...] [--sigint_effect stop|snapshot|none]
                              [--sighup_effect snapshot|stop|none] [--workers N] [--log FILE]
                              [--cpu-ranks N]

Flags are gflags-style as Caffe's: ``-solver=x``, ``--solver=x`` and ``--solver x`` all work.
Without --gpu the solver's solver_mode and device_id decide.  More than one GPU (``--gpu 0,1``,
``--gpu all``) spawns one process per GPU (NCCL); ``--gpu -1 --cpu-ranks 2`` runs two CPU
processes (gloo).  Under torchrun (WORLD_SIZE > 1) each process is one rank.  The log goes to
stderr (glog lines that Caffe's parse_log.py reads): ``... 2>&1 | tee train.log``.
Ctrl-C snapshots (snapshot_after_train) and stops; SIGHUP snapshots and goes on (Caffe's
defaults).  Exit status (deeplab_caffe.errors.EXIT_*): 1 when the loss or the weights diverge
(NaN/inf), 2 for bad input (also: another trainer holds the snapshot_prefix), 74 when a snapshot
cannot be written (disk full, permission, I/O error; the message names the file and the last
complete snapshot set).
"""
import argparse
import sys

from ..errors import CaffeError
from .flags import devices_from_gpu, gflags_argv, parse_defines

EFFECTS = ("stop", "snapshot", "none")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train like `caffe train`.")
    p.add_argument("--solver", required=True, help="solver prototxt")
    p.add_argument("--weights", help="comma-separated .caffemodel files to fine-tune from")
    p.add_argument("--snapshot", help=".solverstate to resume from")
    p.add_argument("--gpu", help="0 | 0,1 | all | -1 (CPU); default: the solver's solver_mode")
    p.add_argument("--define", "-D", action="append", default=[], metavar="KEY=VALUE",
                   help="fill ${KEY} in the solver and net files (repeatable)")
    p.add_argument("--iterations", type=int, help="override max_iter")
    p.add_argument("--level", type=int, help="net state level (overrides the solver's)")
    p.add_argument("--stage", action="append", default=[], help="net state stage (repeatable)")
    p.add_argument("--sigint_effect", choices=EFFECTS, default="stop")
    p.add_argument("--sighup_effect", choices=EFFECTS, default="snapshot")
    p.add_argument("--workers", type=int, help="ImageSegData loader processes per rank "
                   "(default min(4, cpus) on GPU, 0 on CPU)")
    p.add_argument("--log", help="also append the log to this file")
    p.add_argument("--cpu-ranks", "--cpu_ranks", dest="cpu_ranks", type=int, default=1,
                   help="with --gpu -1: number of CPU processes (gloo)")
    a = p.parse_args(gflags_argv(sys.argv[1:] if argv is None else argv))
    if a.weights and a.snapshot:
        p.error("give --weights or --snapshot, not both")
    try:
        a.defines = parse_defines(a.define)
    except CaffeError as e:
        p.error(str(e))
    return a


def train(args):
    """Train with the options of parse_args (``deeplab-caffe train`` builds the same namespace):
    one process, one process per GPU (NCCL) or per CPU rank (gloo), or this process's rank under
    torchrun.  Returns 0, or the exit status of a spawned rank that failed; raises
    DivergedError / CaffeError from this process."""
    from ..solver import distributed
    from ..solver.run import run, spawned
    env = distributed.env_rank()
    if env is not None:
        rank, world, local = env
        dev = "cpu" if (args.gpu or "").strip() in ("", "-1") else f"cuda:{local}"
        run(args, dev, rank, world)
        return 0
    devs = devices_from_gpu(args.gpu, args.cpu_ranks)
    if len(devs) == 1:
        run(args, devs[0])
        return 0
    import torch.multiprocessing as mp
    init_method = f"tcp://127.0.0.1:{distributed.free_port()}"
    try:
        mp.spawn(spawned, args=(args, devs, init_method), nprocs=len(devs), join=True)
    except Exception as e:  # a spawned rank failed: its own message is already printed
        if type(e).__name__ == "ProcessExitedException":
            return getattr(e, "exit_code", 1) or 1
        raise
    return 0


def main(argv=None):
    args = parse_args(argv)
    from ..solver import DivergedError
    try:
        return train(args)
    except CaffeError as e:
        if not isinstance(e, DivergedError) and not getattr(e, "logged", False):
            print(f"train_net.py: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
