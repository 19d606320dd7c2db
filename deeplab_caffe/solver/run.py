"""What `tools/train_net.py` runs in each process: build the solver from the command-line
options, join the process group when there are several ranks, handle signals as `caffe train`
does, and solve.  A module of the library (not of the tool) so that torch.multiprocessing can
import ``spawned`` in the child processes."""
import signal
import sys

from ..errors import CaffeError
from ..log import GLog
from . import distributed
from .base import DivergedError
from .sgd import SGDSolver
from .spec import load_solver


class SignalHandler:
    """Caffe's SignalHandler: remembers SIGINT/SIGHUP and answers the solver's query once."""

    def __init__(self, sigint_effect, sighup_effect):
        self.effects = {signal.SIGINT: sigint_effect}
        if hasattr(signal, "SIGHUP"):
            self.effects[signal.SIGHUP] = sighup_effect
        self.pending = []
        for sig in self.effects:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, sig, frame):
        self.pending.append(self.effects[sig])

    def __call__(self):
        if not self.pending:
            return "none"
        effects, self.pending = self.pending, []
        return "stop" if "stop" in effects else ("snapshot" if "snapshot" in effects else "none")


def run(args, device, rank=0, world_size=1, init_method=None):
    """One rank.  ``args``: the tool's options (solver, defines, weights, snapshot,
    iterations, level, stage, workers, log, sigint_effect, sighup_effect)."""
    if world_size > 1:
        distributed.init_process_group(rank, world_size, device, init_method)
    log = GLog(path=args.log, enabled=rank == 0)
    spec = load_solver(args.solver, args.defines)
    if args.iterations is not None:
        spec.max_iter = args.iterations
    if args.snapshot:
        spec.weights = []       # caffe train: resuming clears the solver file's weights
    solver = SGDSolver(spec, device=device, weights=args.weights, num_workers=args.workers,
                       log=log, level=args.level, stages=args.stage, rank=rank,
                       world_size=world_size)
    solver.action_request = SignalHandler(args.sigint_effect, args.sighup_effect)
    if world_size > 1:
        distributed.attach(solver)
    try:
        solver.solve(resume_file=args.snapshot)
    finally:
        solver.release_snapshot_prefix()
        log.close()
        if world_size > 1:
            distributed.destroy()
    return solver


def spawned(rank, args, devs, init_method):
    """torch.multiprocessing.spawn entry: rank ``rank`` of ``len(devs)``."""
    try:
        run(args, devs[rank], rank, len(devs), init_method)
    except CaffeError as e:
        if not isinstance(e, DivergedError) and not getattr(e, "logged", False):
            print(f"train_net.py: error (rank {rank}): {e}", file=sys.stderr)
        sys.exit(e.exit_code)


