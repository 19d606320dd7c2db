"""Writing a snapshot set and guarding it: Caffe's Solver::Snapshot (the weights, then the
solver state, so a .solverstate on disk means its set is complete), plus what Caffe lacks: our
.rngstate side file, no snapshot from NaN/inf weights or history, a failed write (disk full,
permission) that removes its partial set and names the last complete one, and a lock on the
snapshot prefix (prefix_lock.py) so two trainers never mix their files."""
import os
import weakref

import torch

from ..errors import EXIT_DIVERGED, CaffeError, WriteError
from ..io import write_solverstate
from . import prefix_lock
from . import state as solver_state


class DivergedError(CaffeError):
    """The loss (or the weights) became NaN or infinite; training stopped."""
    exit_code = EXIT_DIVERGED


def hold_prefix(solver):
    """Lock the solver's snapshot prefix (rank 0): a second trainer on the same prefix stops
    with PrefixLockedError.  Held until the solver is collected or ``release_prefix``; taking
    it also removes killed runs' temporary files."""
    if solver.rank != 0 or solver._prefix_lock is not None:
        return
    key = prefix_lock.acquire(solver.spec.snapshot_prefix_for(solver.deeplab_v1), solver.log)
    if key is not None:
        solver._prefix_lock = weakref.finalize(solver, prefix_lock.release, key)


def release_prefix(solver):
    if solver._prefix_lock is not None:
        solver._prefix_lock()
        solver._prefix_lock = None


def last_good(solver):
    return (f"the last complete snapshot set is {solver.last_snapshot}" if solver.last_snapshot
            else "no snapshot set was completed")


def non_finite(solver):
    """'<layer> param <j>' (or '... history') of the first blob holding NaN/inf, else None."""
    with torch.no_grad():
        for p, _, _, layer, j in solver._params:
            if not bool(torch.isfinite(p).all()):
                return f"{layer} param {j}"
        for i, h in enumerate(solver.history):
            if not bool(torch.isfinite(h).all()):
                p, _, _, layer, j = solver._params[i % len(solver._params)]
                return f"{layer} param {j}'s history blob {i}"
    return None


def write(solver):
    """Write the solver's snapshot set (see Solver.snapshot); returns the solver state's path,
    or None on ranks other than 0."""
    if solver.rank != 0:
        return None
    hold_prefix(solver)
    bad = non_finite(solver)
    if bad:
        msg = (f"Iteration {solver.iter}: {bad} is NaN or infinite: training diverged; no "
               f"snapshot written; {last_good(solver)}")
        solver.log.error("diverged", msg)
        raise DivergedError(msg)
    hdf5 = solver.spec.snapshot_format == "HDF5"
    ext = ".h5" if hdf5 else ""
    model = solver.snapshot_filename(".caffemodel" + ext)
    state = solver.snapshot_filename(".solverstate" + ext)
    # DeepLab v1's fork wrote only binary protos, and said less.
    kind = "HDF5 file " if hdf5 else "" if solver.deeplab_v1 else "binary proto file "
    file_format = "hdf5" if hdf5 else solver._format()
    written = []
    try:
        folder = os.path.dirname(model)
        if folder:
            os.makedirs(folder, exist_ok=True)
        solver.log.info("snapshot", f"Snapshotting to {kind}{model}")
        solver.net.save(model, format=file_format,
                        diffs=solver.param_diffs if solver.spec.snapshot_diff else None)
        written.append(model)
        side = solver_state.rngstate_path(state)
        solver_state.write(side, solver_state.capture(solver))
        written.append(side)
        solver.log.info("state", f"Snapshotting solver state to {kind}{state}")
        write_solverstate(state, solver.iter, model,
                          [h.detach().cpu() for h in solver.history], solver.current_step,
                          format=file_format)
    except (WriteError, OSError) as e:
        for path in written:
            if os.path.exists(path):
                os.remove(path)
        if not isinstance(e, WriteError):   # os.makedirs
            e = WriteError(f"{e.filename}: cannot write: {e.strerror}", e.filename, e.strerror)
        msg = f"Iteration {solver.iter}: snapshot failed: {e}; {last_good(solver)}"
        solver.log.error("snapshot", msg)
        err = WriteError(msg, e.path, e.reason)
        err.logged = True      # the tools print nothing more: one line
        raise err from None
    solver.last_snapshot, solver._snapshot_iter = state, solver.iter
    return state
