"""Snapshots under hostile or unlucky conditions: side files that are not data, divergence,
disk full and I/O errors, two trainers on one snapshot prefix (issue 18)."""
import io
import json
import os
import pickle

import torch

import deeplab_caffe as dc
from deeplab_caffe.solver import state as solver_state
from solver_util import make_solver

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
             "version": json.dumps(dict(good, version=1)).encode()}
    for reason, data in cases.items():
        side.write_bytes(data)
        log, stream = _log()
        b = make_solver(tmp_path, FIXED, seed=5)
        b.log = log
        b.restore(path)
        assert reason in stream.getvalue(), (reason, stream.getvalue())
        assert b.batches_served == [1]
