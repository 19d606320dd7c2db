"""Where DeepLab v1's Caffe fork (solver.cpp) and BVLC master differ in the solver loop: a
DeepLab v1 train net gets the fork's behaviour, any other net master's."""
import io
import os
import re

import numpy as np
import pytest
import torch

import deeplab_caffe as dc
from deeplab_caffe.log import GLog
from solver_util import dataset, ls_net, ls_net_deeplab_v1

LOSS_LINE = re.compile(r"\] Iteration (\d+), loss = (\S+)$")


def solver(tmp_path, extra, deeplab_v1, prefix=True, log=None):
    net = tmp_path / "net.prototxt"
    net.write_text(ls_net_deeplab_v1() if deeplab_v1 else ls_net())
    text = (f'net: "{net}"\nlr_policy: "fixed"\nbase_lr: 0.05\nmomentum: 0.9\n'
            f'solver_mode: CPU\nrandom_seed: 5\n' + extra)
    if prefix:
        text += f'snapshot_prefix: "{tmp_path}/out/ls"\n'
    (tmp_path / "solver.prototxt").write_text(text)
    s = dc.SGDSolver(str(tmp_path / "solver.prototxt"), log=log or GLog(enabled=False))
    s.net.layer("data").set_input_arrays(*dataset())
    assert s.deeplab_v1 == deeplab_v1
    return s


def snapshots(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith((".caffemodel", ".solverstate")))


@pytest.mark.parametrize("deeplab_v1,want", [(True, [2]), (False, [2, 4])])
def test_no_snapshot_at_max_iter_without_snapshot_after_train(tmp_path, deeplab_v1, want):
    # The fork checks `iter % snapshot` at the top of its loop, which ends at max_iter; master
    # checks after each update, so it writes iteration 4 although snapshot_after_train is false.
    s = solver(tmp_path, "max_iter: 4\nsnapshot: 2\nsnapshot_after_train: false\n", deeplab_v1)
    s.solve()
    assert snapshots(tmp_path / "out") == [f"ls_iter_{n}{e}" for n in want
                                           for e in (".caffemodel", ".solverstate")]


@pytest.mark.parametrize("deeplab_v1", [True, False])
def test_snapshot_after_train_writes_max_iter_once(tmp_path, deeplab_v1):
    buf = io.StringIO()
    s = solver(tmp_path, "max_iter: 4\nsnapshot: 2\n", deeplab_v1, log=GLog(stream=buf))
    s.solve()
    assert snapshots(tmp_path / "out") == [f"ls_iter_{n}{e}" for n in (2, 4)
                                           for e in (".caffemodel", ".solverstate")]
    kind = "" if deeplab_v1 else "binary proto file "
    lines = buf.getvalue().splitlines()
    written = [l.split("] ")[1] for l in lines if "Snapshotting to" in l]
    assert written == [f"Snapshotting to {kind}{tmp_path}/out/ls_iter_{n}.caffemodel"
                       for n in (2, 4)]


def _raw_loss(s):
    """The loss of the forward pass after training: batch max_iter % 2 of the data."""
    x, y = dataset()
    k = s.iter % 2
    w, b = (t.detach().double().numpy() for t in s.net.params["ip"])
    xb, yb = x[4 * k:4 * k + 4].reshape(4, -1).astype(np.float64), y[4 * k:4 * k + 4]
    r = xb @ w.reshape(-1) + b[0] - yb
    return float(np.sum(r * r) / 8)


@pytest.mark.parametrize("deeplab_v1", [True, False])
def test_final_display(tmp_path, deeplab_v1):
    # After max_iter both run one more forward pass for the display.  The fork logs that pass's
    # loss; master folds it into the smoothed loss (average_loss 3) and logs the mean.
    buf = io.StringIO()
    s = solver(tmp_path, "max_iter: 5\ndisplay: 1\naverage_loss: 3\nsnapshot_after_train: false\n",
               deeplab_v1, log=GLog(stream=buf))
    s.solve()
    losses = {}
    for line in buf.getvalue().splitlines():
        m = LOSS_LINE.search(line)
        if m:
            losses.setdefault(int(m.group(1)), []).append(float(m.group(2)))
    assert sorted(losses) == [0, 1, 2, 3, 4, 5] and len(losses[5]) == 1
    raw = _raw_loss(s)
    if deeplab_v1:
        assert losses[5][0] == pytest.approx(raw, rel=1e-5)
    else:
        assert losses[5][0] != pytest.approx(raw, rel=1e-3)
        assert losses[5][0] == pytest.approx(s.smoothed_loss, rel=1e-5)
        assert s.smoothed_loss == pytest.approx(np.mean(s._losses), rel=1e-6)
        assert raw in [pytest.approx(v, rel=1e-6) for v in s._losses]


def test_no_prefix_deeplab_v1_writes_iter_n_in_cwd(tmp_path, monkeypatch):
    # The fork's Snapshot: snapshot_prefix + "_iter_N" with the prefix as written (empty).
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    s = solver(tmp_path, "max_iter: 2\nsnapshot: 1\n", True, prefix=False)
    s.solve()
    assert snapshots(run) == [f"_iter_{n}{e}" for n in (1, 2)
                              for e in (".caffemodel", ".solverstate")]
    assert dc.io.read_solverstate(run / "_iter_2.solverstate").learned_net == \
        "_iter_2.caffemodel"
    assert not [f for f in os.listdir(tmp_path) if "_iter_" in f]


def test_no_prefix_bvlc_uses_the_solver_file_path(tmp_path, monkeypatch):
    # master's UpgradeSnapshotPrefixProperty: the solver file's path without its extension.
    monkeypatch.chdir(tmp_path)
    s = solver(tmp_path, "max_iter: 2\nsnapshot: 2\n", False, prefix=False)
    s.solve()
    assert snapshots(tmp_path) == ["solver_iter_2.caffemodel", "solver_iter_2.solverstate"]


def test_prefix_naming_a_directory_bvlc(tmp_path):
    # ... and a prefix that is a directory becomes <directory>/<solver file's stem>.
    (tmp_path / "out").mkdir()
    s = solver(tmp_path, f'max_iter: 1\nsnapshot_prefix: "{tmp_path}/out"\n', False,
               prefix=False)
    s.solve()
    assert snapshots(tmp_path / "out") == ["solver_iter_1.caffemodel",
                                           "solver_iter_1.solverstate"]


def test_text_solver_prefix(tmp_path, monkeypatch):
    # A solver given as text has no file to take a prefix from: master stops when snapshot is
    # set (CheckSnapshotWritePermissions), and names the final snapshot "_iter_N".
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(ls_net())
    text = 'net: "net.prototxt"\nlr_policy: "fixed"\nbase_lr: 0.05\nsolver_mode: CPU\n'
    with pytest.raises(dc.CaffeError, match="snapshot is given but snapshot_prefix is not"):
        dc.SGDSolver(text + "snapshot: 1\nmax_iter: 1\n", log=GLog(enabled=False))
    s = dc.SGDSolver(text + "max_iter: 1\n", log=GLog(enabled=False))
    s.net.layer("data").set_input_arrays(*dataset())
    s.solve()
    assert snapshots(tmp_path) == ["_iter_1.caffemodel", "_iter_1.solverstate"]


def test_solver_file_weights_bvlc(tmp_path):
    # master's `weights` solver field (each entry a comma-separated list) fine-tunes the nets;
    # the weights argument (caffe train --weights) replaces it.
    a = solver(tmp_path, "max_iter: 1\n", False)
    a.net.params["ip"][1].data.fill_(7.0)
    a.net.save(str(tmp_path / "a.caffemodel"))
    a.net.params["ip"][1].data.fill_(-3.0)
    a.net.save(str(tmp_path / "b.caffemodel"))
    (tmp_path / "c").mkdir()
    extra = (f'max_iter: 1\ntest_iter: 1\ntest_interval: 5\n'
             f'weights: "{tmp_path}/b.caffemodel , {tmp_path}/a.caffemodel"\n')
    c = solver(tmp_path / "c", extra, False)
    bias = [float(n.params["ip"][1].detach()) for n in (c.net, c.test_nets[0])]
    assert bias == [7.0, 7.0]
    assert torch.equal(c.net.params["ip"][0], a.net.params["ip"][0])
    d = dc.SGDSolver(str(tmp_path / "c" / "solver.prototxt"), log=GLog(enabled=False),
                     weights=str(tmp_path / "b.caffemodel"))
    assert float(d.net.params["ip"][1].detach()) == -3.0


@pytest.mark.parametrize("deeplab_v1", [True, False])
def test_stop_on_a_snapshot_iteration_writes_it_once(tmp_path, deeplab_v1):
    buf = io.StringIO()
    s = solver(tmp_path, "max_iter: 6\nsnapshot: 2\n", deeplab_v1, log=GLog(stream=buf))
    actions = iter(["none", "stop"])
    s.action_request = lambda: next(actions, "none")
    s.solve()
    assert s.iter == 2 and snapshots(tmp_path / "out") == ["ls_iter_2.caffemodel",
                                                           "ls_iter_2.solverstate"]
    assert buf.getvalue().count("Snapshotting to") == 1
