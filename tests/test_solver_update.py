"""SGDSolver against Caffe's update computed in closed form (test_gradient_based_solver style)."""
import math

import numpy as np
import pytest
import torch

import deeplab_caffe as dc
from deeplab_caffe.solver.lr_policy import learning_rate
from conftest import requires_cuda
from solver_util import dataset, make_solver, reference_adagrad, reference_sgd


def _params(s):
    w, b = s.net.params["ip"]
    return w.detach().numpy().astype(np.float64).copy(), b.detach().numpy().astype(np.float64)


def _check(s, iters, rates, momentum, wd, reg="L2", iter_size=1, batch=4, nesterov=False,
           mults=((1.0, 1.0), (2.0, 0.5))):
    x, y = dataset()
    w0, b0 = _params(s)
    s.step(iters)
    w, b = _params(s)
    rw, rb, vw, vb = reference_sgd(w0, b0, x, y, batch, iters, rates, momentum, wd, reg,
                                   iter_size, mults[0], mults[1], nesterov=nesterov)
    np.testing.assert_allclose(w.reshape(-1), rw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.reshape(-1), [rb], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.history[0].numpy().reshape(-1), vw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.history[1].numpy().reshape(-1), [vb], rtol=1e-5, atol=1e-6)
    assert s.iter == iters


@pytest.mark.parametrize("momentum,wd,reg", [(0.0, 0.0, "L2"), (0.9, 0.0, "L2"),
                                             (0.9, 0.1, "L2"), (0.5, 0.2, "L1")])
def test_sgd_fixed(tmp_path, momentum, wd, reg):
    s = make_solver(tmp_path, f'lr_policy: "fixed"\nbase_lr: 0.05\nmomentum: {momentum}\n'
                    f'weight_decay: {wd}\nregularization_type: "{reg}"\nmax_iter: 10\n')
    _check(s, 5, [0.05] * 5, momentum, wd, reg)


def test_step_policy_keeps_old_velocity(tmp_path):
    # lr drops x0.1 at iteration 3: Caffe's velocity keeps its old scale (torch.optim.SGD's
    # would be rescaled), so a faithful solver must match the reference across the change.
    s = make_solver(tmp_path, 'lr_policy: "step"\nbase_lr: 0.1\ngamma: 0.1\nstepsize: 3\n'
                    'momentum: 0.9\nweight_decay: 0.01\nmax_iter: 10\n')
    rates = [0.1 * 0.1 ** (i // 3) for i in range(7)]
    _check(s, 7, rates, 0.9, 0.01)


@pytest.mark.parametrize("iter_size", [2, 3])
def test_iter_size(tmp_path, iter_size):
    # batch 2 x iter_size: the gradients are accumulated, then divided by iter_size.
    s = make_solver(tmp_path, f'lr_policy: "fixed"\nbase_lr: 0.05\nmomentum: 0.9\n'
                    f'weight_decay: 0.05\niter_size: {iter_size}\nmax_iter: 10\n', batch=2)
    _check(s, 4, [0.05] * 4, 0.9, 0.05, iter_size=iter_size, batch=2)


def test_lr_and_decay_mult(tmp_path):
    s = make_solver(tmp_path, 'lr_policy: "fixed"\nbase_lr: 0.05\nmomentum: 0.8\n'
                    'weight_decay: 0.1\nmax_iter: 10\n',
                    net_kw=dict(w_lr=0.5, w_decay=3, b_lr=0, b_decay=0))
    b0 = _params(s)[1].copy()
    _check(s, 4, [0.05] * 4, 0.8, 0.1, mults=((0.5, 3.0), (0.0, 0.0)))
    assert _params(s)[1] == pytest.approx(b0)       # lr_mult 0: frozen


def test_nesterov(tmp_path):
    s = make_solver(tmp_path, 'type: "Nesterov"\nlr_policy: "fixed"\nbase_lr: 0.05\n'
                    'momentum: 0.9\nweight_decay: 0.01\nmax_iter: 10\n')
    _check(s, 4, [0.05] * 4, 0.9, 0.01, nesterov=True)


def test_clip_gradients(tmp_path):
    s = make_solver(tmp_path, 'lr_policy: "fixed"\nbase_lr: 0.1\nclip_gradients: 0.01\n'
                    'max_iter: 10\n')
    x, y = dataset()
    w0, b0 = _params(s)
    s.step(1)
    w, b = _params(s)
    xb, yb = x[:4].reshape(4, -1).astype(np.float64), y[:4].astype(np.float64)
    r = xb @ w0.reshape(-1) + b0[0] - yb
    g = np.concatenate([xb.T @ r / 4, [r.sum() / 4]])
    norm = np.linalg.norm(g)
    assert norm > 0.01
    g *= 0.01 / norm
    np.testing.assert_allclose(w.reshape(-1), w0.reshape(-1) - 0.1 * g[:3], rtol=1e-5)
    np.testing.assert_allclose(b, b0 - 0.2 * g[3], rtol=1e-5)


def _rate(policy, it, **kw):
    return learning_rate(policy, it, kw.pop("base_lr", 0.01), **kw)[0]


def test_lr_policies():
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    assert _rate("fixed", 77) == f32(0.01)
    assert _rate("step", 5, gamma=0.1, stepsize=2) == pytest.approx(0.01 * 0.1 ** 2, rel=1e-6)
    assert _rate("exp", 3, gamma=0.5) == pytest.approx(0.01 * 0.125, rel=1e-6)
    assert _rate("inv", 10, gamma=1e-4, power=0.75) == \
        pytest.approx(0.01 * (1 + 1e-4 * 10) ** -0.75, rel=1e-6)
    assert _rate("poly", 25, power=0.9, max_iter=100) == pytest.approx(0.01 * 0.75 ** 0.9,
                                                                       rel=1e-6)
    assert _rate("sigmoid", 30, gamma=-0.1, stepsize=20) == \
        pytest.approx(0.01 / (1 + math.exp(0.1 * 10)), rel=1e-6)
    # multistep advances at most one step per call, when iter reaches the next stepvalue.
    step, rates = 0, []
    for it in range(8):
        r, step = learning_rate("multistep", it, 1.0, gamma=0.5, stepvalue=[2, 3, 6],
                                current_step=step)
        rates.append(r)
    assert rates == [1, 1, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125]
    with pytest.raises(dc.CaffeError, match="unknown lr_policy 'foo'"):
        learning_rate("foo", 0, 0.1)


def test_multistep_solver_and_current_step(tmp_path):
    s = make_solver(tmp_path, 'lr_policy: "multistep"\nbase_lr: 0.1\ngamma: 0.5\n'
                    'stepvalue: 2\nstepvalue: 4\nmomentum: 0.9\nmax_iter: 10\n')
    rates = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    _check(s, 6, rates, 0.9, 0.0)
    assert s.current_step == 2


def test_nan_loss_stops_before_update(tmp_path):
    s = make_solver(tmp_path, 'lr_policy: "fixed"\nbase_lr: 0.1\nmax_iter: 10\nsnapshot: 1\n')
    s.step(1)
    snap = s.last_snapshot
    x, y = dataset()
    y[:] = np.nan
    s.net.layer("data").set_input_arrays(x, y)
    w = _params(s)[0]
    with pytest.raises(dc.solver.DivergedError, match=r"loss = nan.*ls_iter_1\.solverstate"):
        s.step(3)
    np.testing.assert_array_equal(_params(s)[0], w)
    assert s.iter == 1 and snap.endswith("ls_iter_1.solverstate")


def test_test_net_shares_weights_and_averages(tmp_path):
    s = make_solver(tmp_path, 'lr_policy: "fixed"\nbase_lr: 0.1\nmax_iter: 10\ntest_iter: 2\n'
                    'test_interval: 100\n')
    tn = s.test_nets[0]
    assert tn.params["ip"][0] is s.net.params["ip"][0]
    x, y = dataset()
    tn.layer("data").set_input_arrays(x, y)
    s.step(2)
    res = s.test(0)
    w, b = _params(s)
    r = x.reshape(8, -1).astype(np.float64) @ w.reshape(-1) + b[0] - y
    want = np.mean([np.sum(r[:4] ** 2) / 8, np.sum(r[4:] ** 2) / 8])
    assert res["loss"] == pytest.approx(want, rel=1e-5)
    assert torch.is_grad_enabled()


def test_average_loss_window(tmp_path):
    # Caffe's UpdateSmoothedLoss: the mean of the last average_loss iteration losses.
    s = make_solver(tmp_path, 'lr_policy: "fixed"\nbase_lr: 0.05\nmax_iter: 10\n'
                    'average_loss: 3\n')
    got = []
    for loss in [1.0, 2.0, 3.0, 4.0, 8.0]:
        s._update_smoothed_loss(loss, 0)
        got.append(s.smoothed_loss)
        s.iter += 1
    assert got == pytest.approx([1, 1.5, 2, 3, 5])


def test_update_rule_registry(tmp_path, monkeypatch):
    # The registry holds Caffe's type names; a rule registered for a type (a stand-in for Adam
    # here: plain steps, two history blobs per parameter) is what SGDSolver runs for it, and its
    # history goes through the .solverstate.
    from deeplab_caffe.solver import UPDATE_RULES, UpdateRule, update_rule
    assert sorted(UPDATE_RULES) == ["AdaDelta", "AdaGrad", "Adam", "Nesterov", "RMSProp", "SGD"]
    with pytest.raises(ValueError, match="'Adamax' is not one of Caffe's solver types"):
        update_rule.register(type("Adamax", (UpdateRule,), {"type": "Adamax"}))

    class StandIn(UpdateRule):
        type, history_slots = "Adam", 2

        def compute_update_value(self, diffs, history, local_rate, iter):
            torch._foreach_add_(history[1], 1.0)     # slot 1 counts the updates
            return [d * local_rate for d in diffs]
    monkeypatch.setitem(UPDATE_RULES, "Adam", StandIn)
    s = make_solver(tmp_path, 'type: "Adam"\nlr_policy: "fixed"\nbase_lr: 0.05\nmax_iter: 10\n')
    assert isinstance(s.update_rule, StandIn) and len(s.history) == 4
    w0, b0 = _params(s)
    x, y = dataset()
    s.step(3)
    rw, rb, _, _ = reference_sgd(w0, b0, x, y, 4, 3, [0.05] * 3, 0.0, 0.0)
    np.testing.assert_allclose(_params(s)[0].reshape(-1), rw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_params(s)[1].reshape(-1), [rb], rtol=1e-5, atol=1e-6)
    assert [float(h.flatten()[0]) for h in s.history[2:]] == [3.0, 3.0]
    path = s.snapshot()
    (tmp_path / "b").mkdir()
    b = make_solver(tmp_path / "b", 'type: "Adam"\nlr_policy: "fixed"\nbase_lr: 0.05\n')
    b.restore(path)
    for h, g in zip(s.history, b.history):
        assert torch.equal(h, g)
    (tmp_path / "sgd").mkdir()
    sgd = make_solver(tmp_path / "sgd", 'lr_policy: "fixed"\nbase_lr: 0.05\n')
    with pytest.raises(dc.CaffeError, match="2 history blobs, but .* keeps 4"):
        b.restore(sgd.snapshot())


def test_l2sqrt_deeplab_v1(tmp_path):
    # DeepLab v1's regularization_type "L2sqrt": diff += local_decay * w / max(|w|, 1e-6), with
    # |w| the L2 norm of each blob on its own (weight and bias here), under momentum.
    s = make_solver(tmp_path, 'lr_policy: "step"\nbase_lr: 0.05\ngamma: 0.5\nstepsize: 2\n'
                    'momentum: 0.9\nweight_decay: 0.3\nregularization_type: "L2sqrt"\n'
                    'max_iter: 10\n', net_kw=dict(w_decay=2, b_decay=0.5))
    _check(s, 5, [0.05 * 0.5 ** (i // 2) for i in range(5)], 0.9, 0.3, "L2sqrt",
           mults=((1.0, 2.0), (2.0, 0.5)))


def _check_adagrad(s, iters, rates, delta, wd, reg="L2", mults=((1.0, 1.0), (2.0, 0.5))):
    x, y = dataset()
    w0, b0 = _params(s)
    s.step(iters)
    w, b = _params(s)
    rw, rb, hw, hb = reference_adagrad(w0, b0, x, y, 4, iters, rates, delta, wd, reg,
                                       w_mults=mults[0], b_mults=mults[1])
    np.testing.assert_allclose(w.reshape(-1), rw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.reshape(-1), [rb], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.history[0].numpy().reshape(-1), hw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.history[1].numpy().reshape(-1), [hb], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("solver_type,delta,wd,reg", [
    ('type: "AdaGrad"', None, 0.0, "L2"), ("solver_type: ADAGRAD", 0.5, 0.1, "L2"),
    ('type: "AdaGrad"', 0.05, 0.2, "L1")])
def test_adagrad(tmp_path, solver_type, delta, wd, reg):
    # A large delta tells sqrt(h) + delta from sqrt(h + delta); the default is 1e-8.
    extra = f"delta: {delta}\n" if delta is not None else ""
    s = make_solver(tmp_path, f'{solver_type}\nlr_policy: "step"\nbase_lr: 0.1\ngamma: 0.5\n'
                    f'stepsize: 3\nweight_decay: {wd}\nregularization_type: "{reg}"\n'
                    f'max_iter: 10\n' + extra, net_kw=dict(w_lr=0.5, w_decay=3))
    assert s.update_rule.type == "AdaGrad" and len(s.history) == 2
    _check_adagrad(s, 6, [0.1 * 0.5 ** (i // 3) for i in range(6)],
                   1e-8 if delta is None else delta, wd, reg, mults=((0.5, 3.0), (2.0, 0.5)))


@requires_cuda
@pytest.mark.parametrize("extra", ['regularization_type: "L2sqrt"\nmomentum: 0.9\n',
                                   'type: "AdaGrad"\ndelta: 0.01\n',
                                   'type: "RMSProp"\nrms_decay: 0.9\ndelta: 0.01\n',
                                   'type: "AdaDelta"\nmomentum: 0.9\ndelta: 0.01\n',
                                   'type: "Adam"\nmomentum: 0.9\nmomentum2: 0.99\n'])
def test_cuda_matches_cpu(tmp_path, extra):
    text = f'lr_policy: "fixed"\nbase_lr: 0.05\nweight_decay: 0.1\nmax_iter: 10\n{extra}'
    runs, start = [], None
    for device in ("cpu", "cuda"):
        (tmp_path / device).mkdir()
        s = make_solver(tmp_path / device, text, device=device)
        with torch.no_grad():
            # the fillers draw from each device's own generator: start from the same weights
            start = start or [p.detach().clone() for p in s.net.params["ip"]]
            for p, v in zip(s.net.params["ip"], start):
                p.copy_(v)
        s.step(4)
        runs.append([t.detach().cpu() for t in list(s.net.params["ip"]) + s.history])
    for a, b in zip(*runs):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
