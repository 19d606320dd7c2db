"""Solver: Caffe's Solver (solver.cpp): the nets, the loop (Step / Solve), testing, display,
and the snapshot / restore of the state every solver type shares.

    solver = SGDSolver("solver.prototxt", device="cuda", defines={"EXP": "voc12"})
    solver.net.copy_from("init.caffemodel")      # or SGDSolver(..., weights="a,b")
    solver.solve()                                 # or solver.step(100); solver.snapshot()
    solver.restore("train_iter_2000.solverstate")

One iteration (BVLC solver.cpp): clear the diffs; test when iter % test_interval == 0 (and
iter > 0 or test_initialization); iter_size forward/backward passes accumulating gradients;
loss /= iter_size; smoothed loss over average_loss; display; then the solver type's
ApplyUpdate (sgd.py); iter += 1; snapshot when iter % snapshot == 0 or a signal asks for it.
Test nets share the train net's Parameters by layer name (Caffe's ShareTrainedLayersWith).

DeepLab v1's Caffe (TheLegendAli/DeepLab-Context, solver.cpp) differs from BVLC master in the
loop; its behaviour applies when the train net is written in DeepLab v1's dialect (the net
parser's "deeplab_v1": its layer types or fields), master's otherwise (see ``deeplab_v1``):
  * snapshots are checked at the top of its loop, which stops at max_iter, so the state after
    the last iteration is written only by snapshot_after_train;
  * the final display logs the loss of that extra forward pass, not the smoothed loss;
  * snapshot_prefix is used as written (none: ``_iter_N.*`` in the working directory).
"""
import math
import os

import torch

from ..errors import CaffeError
from ..io.hdf5 import check_layer_names
from ..log import GLog, Progress, fmt
from ..net import Net
from . import snapshot
from . import state as solver_state
from .data_position import data_layers
from .snapshot import DivergedError
from .spec import TEXT_PATH, load_solver


class Solver:
    """What every Caffe solver type shares, over a Net built from a solver file.  A solver type
    adds ``pre_solve`` (its history blobs) and ``apply_update`` (see sgd.SGDSolver).

    solver: path, text, Message or SolverSpec; device: None follows solver_mode/device_id
    ("cpu" for CPU mode); defines fill ``${NAME}`` in the solver and net files; weights: a
    comma-separated list of .caffemodel files copied into the nets (``caffe train --weights``;
    default: the solver file's ``weights``); num_workers / pin_memory: ImageSegData loading
    (default: min(4, cpus) workers and pinned memory on CUDA, in-process on CPU); log: a GLog
    (default stderr);
    rank / world_size: set by solver.distributed (only rank 0 logs, tests, snapshots).
    """

    def __init__(self, solver, device=None, defines=None, weights=None, num_workers=None,
                 pin_memory=None, log=None, level=None, stages=None, rank=0, world_size=1):
        self.spec = spec = load_solver(solver, defines)
        self.rank, self.world_size = rank, world_size
        self.log = log if log is not None else GLog(enabled=rank == 0)
        self.device = torch.device(device) if device is not None else self._solver_device()
        self.log.info("init", f"Initializing solver from parameters: {spec.path or '<message>'}")
        if spec.random_seed >= 0:
            # Caffe::set_random_seed(random_seed + solver_rank) before the nets are built.
            torch.manual_seed(spec.random_seed + rank)
            if self.device.type == "cuda":
                torch.cuda.manual_seed_all(spec.random_seed + rank)
        self.net = self._build(spec.train_net, "Creating training net", level, stages)
        self.net.train()
        # Which Caffe's loop to follow: DeepLab v1's fork trains DeepLab v1 files.
        self.deeplab_v1 = getattr(self.net.spec, "dialect", "v2") == "deeplab_v1"
        self._check_snapshot_prefix()
        if spec.snapshot_format == "HDF5":
            # Caffe finds out at its first snapshot, after hours of training.
            check_layer_names(self.net.layer_names, f"{spec.path}: snapshot_format HDF5")
        self.test_nets = []
        for i, src in enumerate(spec.test_nets):
            tn = self._build(src, f"Creating test net (#{i})", level, stages)
            tn.eval()
            tn.share_trained_layers_with(self.net)
            self.test_nets.append(tn)
        self._params = self.net.learnable_params()
        for p, lr_mult, *_ in self._params:
            # Caffe skips the backward of blobs with lr_mult 0 (param_propagate_down false).
            p.requires_grad_(lr_mult != 0)
        self.history = self.pre_solve()
        self.param_diffs = {}          # id(parameter) -> last update, kept for snapshot_diff
        cuda = self.device.type == "cuda"
        self.set_data_loading(num_workers if num_workers is not None else
                              (min(4, os.cpu_count() or 1) if cuda else 0),
                              cuda if pin_memory is None else pin_memory)
        self.iter, self.current_step = 0, 0
        self.batches_served = [0] * (1 + len(self.test_nets))
        self._losses, self.smoothed_loss, self._loss_start = [], 0.0, 0
        self._carry_losses = False
        self.requested_early_exit = False
        self.action_request = None     # callable -> "none" | "snapshot" | "stop" (signals)
        self.after_backward = None     # callable(solver, loss) -> loss: all-reduce (distributed)
        self.last_snapshot, self._snapshot_iter = None, None
        self._solving = False
        self._prefix_lock = None
        # BVLC's LoadNetWeights: --weights replaces the solver file's ``weights`` entries, each
        # a comma-separated list; master copies them into the test nets too (for their own
        # layers), DeepLab v1's caffe train only into the train net.
        entries = [weights] if weights else spec.weights
        for w in [w.strip() for entry in entries for w in str(entry).split(",")]:
            self.log.info("copy", f"Finetuning from {w}")
            for net in [self.net] + ([] if self.deeplab_v1 else self.test_nets):
                net.copy_from(w)

    # -- construction ------------------------------------------------------------------------
    def _solver_device(self):
        if self.spec.solver_mode == "CPU":
            return torch.device("cpu")
        if not torch.cuda.is_available():
            raise CaffeError(f"{self.spec.path}: solver_mode is GPU but no CUDA GPU is available;"
                             " run on the CPU with --gpu -1 (or device='cpu')")
        return torch.device(f"cuda:{self.spec.device_id}")

    def _check_snapshot_prefix(self):
        spec = self.spec
        if self.deeplab_v1 or not spec.snapshot or spec.message.has("snapshot_prefix") or \
                spec.path not in (None, TEXT_PATH):
            return
        # BVLC's CheckSnapshotWritePermissions; a solver file gets a prefix from its path.
        raise spec.error("snapshot", "snapshot is given but snapshot_prefix is not (a solver "
                         "that is not read from a file needs one)")

    def _build(self, src, what, level, stages):
        kind = "net file" if isinstance(src.source, str) else "net parameter"
        self.log.info("net" if src.phase == "TRAIN" else "test_net",
                      f"{what} from {kind}: {src.source if isinstance(src.source, str) else ''}")
        net_level = src.level if level is None else level
        net_stages = src.stages + tuple(stages or ())
        return Net(src.source, phase=src.phase, device=self.device, defines=self.spec.defines,
                   level=net_level, stages=net_stages)

    def set_data_loading(self, num_workers, pin_memory):
        """Background decoding for every ImageSegData layer (before the first forward)."""
        self.num_workers, self.pin_memory = int(num_workers), bool(pin_memory)
        for net in [self.net] + self.test_nets:
            for _, layer in data_layers(net):
                if layer.type_name == "ImageSegData":
                    layer.num_workers, layer.pin_memory = self.num_workers, self.pin_memory

    # -- the loop ----------------------------------------------------------------------------
    def solve(self, resume_file=None):
        """Caffe's Solver::Solve: optionally restore, step to max_iter, final snapshot, final
        display and test.  Returns the final smoothed loss."""
        spec = self.spec
        self.log.info("solving", f"Solving {self.net.name}")
        self.log.info("policy", f"Learning Rate Policy: {spec.lr_policy}")
        self.requested_early_exit = False
        self.hold_snapshot_prefix()
        if resume_file:
            self.log.info("restore", f"Restoring previous solver status from {resume_file}")
            self.restore(resume_file)
        start_iter = self.iter
        self._solving = True
        try:
            self.step(spec.max_iter - self.iter)
        finally:
            self._solving = False
        # Is this iteration written already?  DeepLab v1 snapshots unconditionally here (its
        # loop never snapshots max_iter; a stop, which only we have, may have); master unless
        # the periodic snapshot covers it.
        written = self._snapshot_iter == self.iter if self.deeplab_v1 else \
            bool(spec.snapshot) and self.iter % spec.snapshot == 0
        if spec.snapshot_after_train and not written:
            self.snapshot()
        if self.requested_early_exit:
            self.log.info("stopped", "Optimization stopped early.")
            return self.smoothed_loss
        if spec.display and self.iter % spec.display == 0:
            with torch.no_grad():
                loss = self._forward_loss(backward=False)
            if not self.deeplab_v1:
                self._update_smoothed_loss(loss, start_iter)
                loss = self.smoothed_loss
            self.log.info("loss", f"Iteration {self.iter}, loss = {fmt(loss)}")
        if spec.test_interval and self.iter % spec.test_interval == 0:
            self.test_all()
        self.log.info("done", "Optimization Done.")
        return self.smoothed_loss

    def step(self, iters):
        """Run ``iters`` iterations (Caffe's Solver::Step)."""
        spec = self.spec
        start_iter, stop_iter = self.iter, self.iter + int(iters)
        if not self._carry_losses:
            self._losses, self.smoothed_loss, self._loss_start = [], 0.0, start_iter
        self._carry_losses = False
        while self.iter < stop_iter:
            for p, *_ in self._params:
                p.grad = None
            if spec.test_interval and self.iter % spec.test_interval == 0 and \
                    (self.iter > 0 or spec.test_initialization):
                self.test_all()
                if self.requested_early_exit:
                    break
            loss = 0.0
            for _ in range(spec.iter_size):
                loss += self._forward_loss(backward=True)
            loss /= spec.iter_size
            if self.after_backward is not None:
                # distributed: average the gradients (and the loss) over the ranks
                loss = self.after_backward(self, loss)
            if not math.isfinite(loss):
                where = (f"; the last snapshot, {self.last_snapshot}, is intact"
                         if self.last_snapshot else "")
                msg = (f"Iteration {self.iter}, loss = {fmt(loss)}: training diverged, stopping "
                       f"before the update{where}")
                self.log.error("diverged", msg)
                raise DivergedError(msg)
            self._update_smoothed_loss(loss, self._loss_start)
            if spec.display and self.iter % spec.display == 0:
                self._display()
            self.apply_update()
            self.iter += 1
            action = self._requested_action()
            if self._snapshot_due() or action == "snapshot":
                self.snapshot()
            if action == "stop":
                self.requested_early_exit = True
                break

    def _snapshot_due(self):
        spec = self.spec
        if not spec.snapshot or self.iter % spec.snapshot != 0 or self.rank != 0:
            return False
        # DeepLab v1's Solve checks at the top of its loop, which it leaves at max_iter.
        return not (self.deeplab_v1 and self._solving and self.iter >= spec.max_iter)

    def _forward_loss(self, backward):
        outs = self.net.forward()
        self.batches_served[0] += 1
        self._last_outputs = outs
        if backward and self.net.loss.requires_grad:
            self.net.loss.backward()
        return float(self.net.loss.detach())

    def _update_smoothed_loss(self, loss, start_iter):
        avg = self.spec.average_loss
        if len(self._losses) < avg:
            self._losses.append(loss)
            n = len(self._losses)
            self.smoothed_loss = (self.smoothed_loss * (n - 1) + loss) / n
        else:
            idx = (self.iter - start_iter) % avg
            self.smoothed_loss += (loss - self._losses[idx]) / avg
            self._losses[idx] = loss

    def _output_lines(self, net, values, kind):
        weights = {t: w for tops, ws in zip(net._tops, net._loss_weights)
                   for t, w in zip(tops, ws)}
        k = 0
        for name, vec in values:
            w = weights.get(name, 0.0)
            for v in vec:
                extra = f" (* {fmt(w)} = {fmt(w * v)} loss)" if w else ""
                self.log.info(f"{kind}_output", f"    {kind.capitalize()} net output #{k}: "
                              f"{name} = {fmt(v)}{extra}")
                k += 1

    def _display(self):
        self.log.info("loss", f"Iteration {self.iter}, loss = {fmt(self.smoothed_loss)}")
        values = [(n, t.detach().reshape(-1).float().cpu().tolist())
                  for n, t in self._last_outputs.items()]
        self._output_lines(self.net, values, "train")

    # -- what a solver type defines ----------------------------------------------------------
    def pre_solve(self):
        """Caffe's PreSolve: the history blobs (what a .solverstate stores besides iter)."""
        raise NotImplementedError(f"{type(self).__name__} defines no pre_solve")

    def apply_update(self):
        """Caffe's ApplyUpdate: turn the accumulated gradients into the parameters' update."""
        raise NotImplementedError(f"{type(self).__name__} defines no apply_update")

    # -- testing -----------------------------------------------------------------------------
    def test_all(self):
        if self.rank != 0:
            return
        for i in range(len(self.test_nets)):
            self.test(i)

    @torch.no_grad()
    def test(self, i=0):
        """Run test net ``i`` for test_iter[i] batches; log and return {output: mean}."""
        self.log.info("testing", f"Iteration {self.iter}, Testing net (#{i})")
        net, n_iter = self.test_nets[i], self.spec.test_iter[i]
        sums, loss = None, 0.0
        bar = Progress(n_iter, f"Testing net (#{i})")
        done = 0
        for k in range(n_iter):
            outs = net.forward()
            self.batches_served[1 + i] += 1
            if self.spec.test_compute_loss:
                loss += float(net.loss)
            vals = [(n, t.detach().reshape(-1).double().cpu()) for n, t in outs.items()]
            sums = vals if sums is None else [(n, s + v) for (n, s), (_, v) in zip(sums, vals)]
            done = k + 1
            bar.update(done)
            # Ranks > 0 do not test, so a collective action check would hang here.
            action = self._requested_action() if self.world_size == 1 else "none"
            if action == "snapshot":
                self.snapshot()
            elif action == "stop":
                self.requested_early_exit = True
                break
        bar.close()
        if self.requested_early_exit:
            self.log.info("testing", "Test interrupted.")
            return {}
        if self.spec.test_compute_loss:
            self.log.info("test_loss", f"Test loss: {fmt(loss / n_iter)}")
        means = [(n, (s / n_iter).tolist()) for n, s in (sums or [])]
        self._output_lines(net, means, "test")
        return {n: (v[0] if len(v) == 1 else v) for n, v in means}

    # -- signals -----------------------------------------------------------------------------
    def _requested_action(self):
        return self.action_request() if self.action_request is not None else "none"

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot_filename(self, ext):
        return f"{self.spec.snapshot_prefix_for(self.deeplab_v1)}_iter_{self.iter}{ext}"

    def _format(self):
        return "v1" if getattr(self.net.spec, "dialect", "v2") in ("v1", "deeplab_v1") else "v2"

    def hold_snapshot_prefix(self):
        """Lock the snapshot prefix (snapshot.py; a second trainer on it stops)."""
        snapshot.hold_prefix(self)

    def release_snapshot_prefix(self):
        snapshot.release_prefix(self)

    def snapshot(self):
        """Write <prefix>_iter_N.caffemodel, .rngstate and .solverstate (with snapshot_format
        HDF5: .caffemodel.h5 and .solverstate.h5), each atomically, the solver state last, so
        its presence means the set is complete; never from non-finite weights, and a failed
        write leaves no partial set (snapshot.py).  Returns the solver state's path."""
        return snapshot.write(self)

    def restore(self, path):
        """Resume from a .solverstate or .solverstate.h5 (Caffe's or ours): iter, weights
        (learned_net, looked up as written and then beside the state file), the solver type's
        history, multistep position; with our .rngstate beside it also the random streams, data
        positions and loss window."""
        solver_state.restore(self, path)

