"""RMSProp, AdaDelta and Adam against their closed forms (float64 references in solver_util),
their solver-file checks, every BVLC solver file loading with its type recognised, and
bit-exact resume of every solver type from either snapshot format."""
import glob
import os

import numpy as np
import pytest
import torch

import deeplab_caffe as dc
from deeplab_caffe.solver import UPDATE_RULES
from deeplab_caffe.solver.spec import load_solver
from solver_util import (dataset, make_solver, reference_adadelta, reference_adam,
                         reference_rmsprop)

BVLC = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "caffe",
                    "bvlc_master")
TOL = dict(rtol=1e-5, atol=1e-6)


def _params(s):
    w, b = s.net.params["ip"]
    return w.detach().numpy().astype(np.float64).copy(), b.detach().numpy().astype(np.float64)


def _history(s, slot):
    n = len(s.net.learnable_params())
    return [h.numpy().astype(np.float64).reshape(-1) for h in s.history[slot * n:(slot + 1) * n]]


def _run(s, iters):
    x, y = dataset()
    w0, b0 = _params(s)
    s.step(iters)
    return x, y, w0, b0


def _assert_matches(s, rw, rb, slots):
    w, b = _params(s)
    np.testing.assert_allclose(w.reshape(-1), rw, **TOL)
    np.testing.assert_allclose(b.reshape(-1), [rb], **TOL)
    for k, (hw, hb) in enumerate(slots):
        got_w, got_b = _history(s, k)
        np.testing.assert_allclose(got_w, hw, **TOL)
        np.testing.assert_allclose(got_b, [hb], **TOL)


STEP = 'lr_policy: "step"\ngamma: 0.5\nstepsize: 3\nmax_iter: 20\n'
MULTS = dict(w_lr=0.5, w_decay=3)
REF_MULTS = dict(w_mults=(0.5, 3.0), b_mults=(2.0, 0.5))


@pytest.mark.parametrize("decay,delta,wd,reg", [(None, None, 0.0, "L2"), (0.9, 0.1, 0.05, "L2"),
                                                (0.5, 1e-3, 0.1, "L1")])
def test_rmsprop(tmp_path, decay, delta, wd, reg):
    extra = (f"rms_decay: {decay}\n" if decay is not None else "") + \
        (f"delta: {delta}\n" if delta is not None else "")
    s = make_solver(tmp_path, f'type: "RMSProp"\nbase_lr: 0.01\n{STEP}weight_decay: {wd}\n'
                    f'regularization_type: "{reg}"\n' + extra, net_kw=MULTS)
    assert s.update_rule.type == "RMSProp" and len(s.history) == 2
    x, y, w0, b0 = _run(s, 7)
    rates = [0.01 * 0.5 ** (i // 3) for i in range(7)]
    rw, rb, state = reference_rmsprop(w0, b0, x, y, 4, 7, rates, 0.99 if decay is None else decay,
                                      1e-8 if delta is None else delta, wd, reg, **REF_MULTS)
    _assert_matches(s, rw, rb, [state])


@pytest.mark.parametrize("solver_type,momentum,delta,lr,wd", [
    ('type: "AdaDelta"', 0.95, 1e-6, 1.0, 0.0005), ("solver_type: ADADELTA", 0.5, 0.01, 0.3, 0.1),
    ('type: "AdaDelta"', None, 1e-4, 1.0, 0.0)])
def test_adadelta(tmp_path, solver_type, momentum, delta, lr, wd):
    # Large deltas and momentum 0.5 keep every term of the update visible in 7 steps; the
    # learning rate (changing at iteration 3) must scale the step but not the update history.
    extra = f"momentum: {momentum}\n" if momentum is not None else ""
    s = make_solver(tmp_path, f'{solver_type}\nbase_lr: {lr}\n{STEP}weight_decay: {wd}\n'
                    f'delta: {delta}\n' + extra, net_kw=MULTS)
    assert s.update_rule.type == "AdaDelta" and len(s.history) == 4
    x, y, w0, b0 = _run(s, 7)
    rates = [lr * 0.5 ** (i // 3) for i in range(7)]
    rw, rb, slots = reference_adadelta(w0, b0, x, y, 4, 7, rates, momentum or 0.0, delta, wd,
                                       **REF_MULTS)
    _assert_matches(s, rw, rb, slots)


@pytest.mark.parametrize("solver_type,beta1,beta2,eps,wd", [
    ('type: "Adam"', 0.9, None, 1e-8, 0.0), ("solver_type: ADAM", 0.5, 0.8, 0.01, 0.05),
    ('type: "Adam"', 0.0, 0.99, 1e-3, 0.01)])
def test_adam(tmp_path, solver_type, beta1, beta2, eps, wd):
    # beta2 0.8 over 7 steps makes the bias correction (t = iter + 1) matter at every step.
    extra = f"momentum2: {beta2}\n" if beta2 is not None else ""
    s = make_solver(tmp_path, f'{solver_type}\nbase_lr: 0.01\n{STEP}momentum: {beta1}\n'
                    f'delta: {eps}\nweight_decay: {wd}\n' + extra, net_kw=MULTS)
    assert s.update_rule.type == "Adam" and len(s.history) == 4
    x, y, w0, b0 = _run(s, 7)
    rates = [0.01 * 0.5 ** (i // 3) for i in range(7)]
    rw, rb, slots = reference_adam(w0, b0, x, y, 4, 7, rates, beta1,
                                   0.999 if beta2 is None else beta2, eps, wd, **REF_MULTS)
    _assert_matches(s, rw, rb, slots)


def test_adam_correction_counts_from_the_resumed_iteration(tmp_path):
    # The correction reads the solver's iter: a solver at iter 5 takes a step of the size the
    # closed form gives for t = 6, not t = 1.
    s = make_solver(tmp_path, 'type: "Adam"\nbase_lr: 0.01\nlr_policy: "fixed"\nmomentum: 0.9\n'
                    'momentum2: 0.99\nmax_iter: 20\n')
    s.iter = 5
    x, y, w0, b0 = _run(s, 1)
    gw = x[:4].reshape(4, -1).astype(np.float64).T @ \
        (x[:4].reshape(4, -1) @ w0.reshape(-1) + b0[0] - y[:4]) / 4
    step = 0.01 * np.sqrt(1 - 0.99 ** 6) / (1 - 0.9 ** 6) * \
        (0.1 * gw) / (np.sqrt(0.01 * gw ** 2) + 1e-8)
    np.testing.assert_allclose(_params(s)[0].reshape(-1), w0.reshape(-1) - step, **TOL)


@pytest.mark.parametrize("text,match", [
    ('type: "RMSProp"\nmomentum: 0.9\n', r":5:1: momentum cannot be used with RMSProp"),
    ('type: "RMSProp"\nrms_decay: 1.0\n', r":5:1: rms_decay should lie between 0 and 1"),
    ('solver_type: RMSPROP\nrms_decay: -0.1\n', r":5:1: rms_decay should lie between 0 and 1"),
])
def test_sanity_checks(tmp_path, text, match):
    p = tmp_path / "bad.prototxt"
    p.write_text('net: "N"\nbase_lr: 0.1\nlr_policy: "fixed"\n' + text)
    with pytest.raises(dc.PrototxtError, match=match):
        load_solver(str(p))


def test_every_caffe_solver_type_is_registered():
    assert sorted(UPDATE_RULES) == ["AdaDelta", "AdaGrad", "Adam", "Nesterov", "RMSProp", "SGD"]


def _bvlc_solver_files():
    return sorted(glob.glob(os.path.join(BVLC, "**", "*solver*.prototxt"), recursive=True))


@pytest.mark.skipif(not _bvlc_solver_files(), reason="../shared/fixtures/caffe is absent")
def test_every_bvlc_solver_file_loads():
    seen, hdf5 = {}, 0
    for path in _bvlc_solver_files():
        spec = load_solver(path)
        with open(path) as f:
            text = f.read()
        declared = [line.split('"')[1] for line in text.splitlines()
                    if line.strip().startswith("type:") and '"' in line and
                    not line.startswith((" ", "\t"))]
        assert spec.type == (declared[0] if declared else "SGD"), path
        seen[spec.type] = seen.get(spec.type, 0) + 1
        assert spec.snapshot_format == ("HDF5" if "snapshot_format: HDF5" in text
                                        else "BINARYPROTO"), path
        hdf5 += spec.snapshot_format == "HDF5"
    # BVLC master 9b89154's 24 solver files, of which 4 snapshot in HDF5.
    assert seen == {"SGD": 18, "Nesterov": 1, "AdaGrad": 1, "RMSProp": 1, "AdaDelta": 2,
                    "Adam": 1}
    assert hdf5 == 4


def _state(s):
    return [p.detach().clone() for p, *_ in s.net.learnable_params()] + \
        [h.clone() for h in s.history]


SOLVERS = {
    "SGD": "momentum: 0.9\n", "Nesterov": "momentum: 0.9\n", "AdaGrad": "delta: 0.001\n",
    "RMSProp": "rms_decay: 0.9\ndelta: 0.001\n", "AdaDelta": "momentum: 0.9\ndelta: 0.001\n",
    "Adam": "momentum: 0.9\nmomentum2: 0.99\n"}


@pytest.mark.parametrize("snapshot_format", ["BINARYPROTO", "HDF5"])
@pytest.mark.parametrize("solver_type", sorted(SOLVERS))
def test_resume_is_bit_exact(tmp_path, solver_type, snapshot_format):
    # Every history blob goes through the snapshot, in Caffe's order, so the resumed run repeats
    # the uninterrupted one bit for bit.
    if snapshot_format == "HDF5":
        pytest.importorskip("h5py")
    text = (f'type: "{solver_type}"\nlr_policy: "step"\nbase_lr: 0.05\ngamma: 0.5\nstepsize: 2\n'
            f'weight_decay: 0.01\nmax_iter: 20\nsnapshot: 3\nsnapshot_format: {snapshot_format}\n'
            + SOLVERS[solver_type])
    a = make_solver(tmp_path, text)
    a.step(3)
    at3 = _state(a)
    a.step(3)
    ext = ".h5" if snapshot_format == "HDF5" else ""
    state = tmp_path / f"ls_iter_3.solverstate{ext}"
    st = dc.io.read_solverstate(state)
    assert st.learned_net == str(tmp_path / f"ls_iter_3.caffemodel{ext}")
    assert len(st.history) == len(a.history) == 2 * a.update_rule.history_slots
    for h, saved in zip(at3[2:], st.history):
        assert torch.equal(h, torch.from_numpy(saved).reshape(h.shape))
    (tmp_path / "b").mkdir()
    b = make_solver(tmp_path / "b", text, seed=99)
    b.restore(str(state))
    assert b.iter == 3
    b.step(3)
    for x, y in zip(_state(a), _state(b)):
        assert torch.equal(x, y)
