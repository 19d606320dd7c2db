"""Snapshots under hostile or unlucky conditions: side files that are not data, divergence,
disk full and I/O errors, two trainers on one snapshot prefix (issue 18)."""
import base64
import contextlib
import errno
import io
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import deeplab_caffe as dc
from deeplab_caffe.solver import DivergedError
from deeplab_caffe.solver import state as solver_state
from deeplab_caffe.solver.prefix_lock import PrefixLockedError
from solver_util import make_solver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FIXED = 'lr_policy: "fixed"\nbase_lr: 0.05\nmomentum: 0.9\nmax_iter: 20\n'


class _MakesDir:
    """Unpickling this calls os.mkdir(marker): what a crafted side file could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _log():
    stream = io.StringIO()
    return dc.log.GLog(stream=stream), stream


def test_rngstate_is_json_and_round_trips(tmp_path):
    a = make_solver(tmp_path, FIXED)
    a.step(2)
    path = a.snapshot()
    raw = (tmp_path / "ls_iter_2.rngstate").read_bytes()
    st = json.loads(raw)
    assert st["format"] == solver_state.FORMAT and st["iter"] == 2
    back = solver_state.read(tmp_path / "ls_iter_2.rngstate")
    assert torch.equal(back["torch"], torch.get_rng_state())
    assert back["batches"] == [2]
    b = make_solver(tmp_path, FIXED, seed=5)
    b.restore(path)
    assert b._carry_losses and b.smoothed_loss == a.smoothed_loss


def test_pickled_side_file_is_refused_and_never_unpickled(tmp_path):
    a = make_solver(tmp_path, FIXED)
    a.step(3)
    path = a.snapshot()
    marker = tmp_path / "pwned"
    side = tmp_path / "ls_iter_3.rngstate"
    for writer in (lambda f: torch.save({"torch": _MakesDir(str(marker))}, f),
                   lambda f: pickle.dump(_MakesDir(str(marker)), open(f, "wb"))):
        writer(str(side))
        log, stream = _log()
        b = make_solver(tmp_path, FIXED, seed=5)
        b.log = log
        b.restore(path)
        assert not marker.exists()
        text = stream.getvalue()
        assert "ls_iter_3.rngstate: not a JSON .rngstate" in text and "(ignored)" in text
        # As without the side file: data layers skip to the batches implied by iter.
        assert b.iter == 3 and b.batches_served == [3] and not b._carry_losses


def test_damaged_side_file_is_refused_with_its_reason(tmp_path):
    a = make_solver(tmp_path, FIXED)
    a.step(1)
    path = a.snapshot()
    side = tmp_path / "ls_iter_1.rngstate"
    good = json.loads(side.read_text())
    cases = {"not valid JSON": side.read_bytes()[:-5],
             "'python.state' is not a list of 625 integers":
                 json.dumps(dict(good, python=dict(good["python"], state=[1, 2]))).encode(),
             "'torch' holds": json.dumps(dict(good, torch="AAAA")).encode(),
             # found by tests/test_properties.py: torch.set_rng_state raised RuntimeError
             "'torch' is not a generator state": json.dumps(dict(good, torch=base64.b64encode(
                 bytes(len(base64.b64decode(good["torch"])))).decode())).encode(),
             "version": json.dumps(dict(good, version=1)).encode()}
    for reason, data in cases.items():
        side.write_bytes(data)
        log, stream = _log()
        b = make_solver(tmp_path, FIXED, seed=5)
        b.log = log
        b.restore(path)
        assert reason in stream.getvalue(), (reason, stream.getvalue())
        assert b.batches_served == [1]


def _finite_set(path):
    st = dc.io.read_solverstate(path)
    model = dc.io.read_caffemodel(st.learned_net)
    return all(np.isfinite(b).all() for l in model.layers for b in l.blobs) and \
        all(np.isfinite(h).all() for h in st.history)


def test_divergence_never_snapshots_non_finite_weights(tmp_path):
    # Snapshot every iteration; the learning rate jumps from 0.01 to 1e38 at iteration 1: its
    # update overflows the weights to inf although its loss was finite.
    s = make_solver(tmp_path, 'lr_policy: "exp"\ngamma: 1e40\nbase_lr: 0.01\nmax_iter: 50\n'
                    'snapshot: 1\n')
    log, stream = _log()
    s.log = log
    with pytest.raises(DivergedError, match="no snapshot written; the last complete snapshot "
                       "set is .*ls_iter_\\d+.solverstate") as e:
        s.solve()
    assert e.value.exit_code == dc.errors.EXIT_DIVERGED
    sets = sorted(tmp_path.glob("ls_iter_*.solverstate"))
    assert sets and all(_finite_set(p) for p in sets)
    assert str(sets[-1]) in str(e.value) or os.path.basename(s.last_snapshot) in str(e.value)
    assert _finite_set(s.last_snapshot)
    # Nothing of the refused set is on disk.
    bad_iter = s.iter
    assert not list(tmp_path.glob(f"ls_iter_{bad_iter}.*"))


def test_disk_full_while_snapshotting(tmp_path, monkeypatch):
    s = make_solver(tmp_path, FIXED)
    s.step(1)
    good = s.snapshot()
    s.step(1)
    real = solver_state.atomic_write

    @contextlib.contextmanager
    def full_disk(path, fsync=True):   # the .rngstate, second file of the set, fills the disk
        with real(path, fsync) as f:
            f.write(b'{"format": ')
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        yield f
    monkeypatch.setattr(solver_state, "atomic_write", full_disk)
    log, stream = _log()
    s.log = log
    with pytest.raises(dc.WriteError) as e:
        s.snapshot()
    msg = str(e.value)
    assert "\n" not in msg and "ls_iter_2.rngstate: cannot write: No space left" in msg
    assert f"the last complete snapshot set is {good}" in msg
    assert e.value.exit_code == 74 and msg in stream.getvalue()
    # No partial set: the set of iteration 2 is gone whole; the set of iteration 1 is intact.
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["ls.lock", "ls.prototxt", "solver.prototxt", "ls_iter_1.caffemodel",
         "ls_iter_1.rngstate", "ls_iter_1.solverstate"])


def test_second_trainer_on_the_same_prefix_stops(tmp_path):
    s = make_solver(tmp_path, FIXED)
    s.hold_snapshot_prefix()
    code = ("import sys, deeplab_caffe as dc\n"
            "from deeplab_caffe.solver.prefix_lock import acquire\n"
            "try:\n    acquire(sys.argv[1])\nexcept dc.CaffeError as e:\n"
            "    print(e); sys.exit(e.exit_code)\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ls")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert f"snapshot_prefix '{tmp_path}/ls' is in use by another trainer (pid {os.getpid()}" \
        in out.stdout
    # Solvers of one process share it; the last one releasing removes the lock file.
    t = make_solver(tmp_path, FIXED)
    t.hold_snapshot_prefix()
    s.release_snapshot_prefix()
    assert (tmp_path / "ls.lock").exists()
    t.release_snapshot_prefix()
    assert not (tmp_path / "ls.lock").exists()


def test_killed_trainer_releases_the_lock_and_its_temp_files_are_removed(tmp_path):
    code = ("import os, sys, time\nfrom deeplab_caffe.solver.prefix_lock import acquire\n"
            "acquire(sys.argv[1])\n"
            "open(sys.argv[1] + f'_iter_7.caffemodel.tmp{os.getpid()}', 'wb').write(b'x')\n"
            "print('held', flush=True)\ntime.sleep(600)\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "ls")], env=env,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        s = make_solver(tmp_path, FIXED)
        with pytest.raises(PrefixLockedError, match=f"pid {p.pid}"):
            s.hold_snapshot_prefix()
    finally:
        p.kill()
        p.wait()
    (tmp_path / "other_iter_7.caffemodel.tmp1").write_bytes(b"not ours")
    s.step(1)
    s.snapshot()      # takes the lock the dead process held, and removes its temporary file
    names = sorted(os.listdir(tmp_path))
    assert not [n for n in names if n.startswith("ls_iter_7")], names
    assert "other_iter_7.caffemodel.tmp1" in names


def test_unwritable_prefix_folder_trains_without_the_lock(tmp_path):
    (tmp_path / "blocked").write_text("a file where the snapshot folder would be")
    s = make_solver(tmp_path, 'lr_policy: "fixed"\nbase_lr: 0.05\nmax_iter: 2\n'
                    'snapshot_after_train: false\n')
    s.spec.snapshot_prefix = f"{tmp_path}/blocked/ls"
    log, stream = _log()
    s.log = log
    s.solve()                     # never snapshots: the missing lock does not stop it
    assert s.iter == 2 and "cannot create the snapshot prefix lock" in stream.getvalue()
    with pytest.raises(dc.WriteError, match="blocked"):
        s.snapshot()
