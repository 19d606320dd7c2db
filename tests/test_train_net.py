"""tools/train_net.py end to end on the CPU: train, snapshot, resume bit for bit, a log that
parse_log reads, two gloo ranks equal to one process, errors and signals."""
import contextlib
import io
import os
import signal

import numpy as np
import pytest

import deeplab_caffe as dc
from deeplab_caffe.cli import train_net
from deeplab_caffe.data.synthetic import make_synthetic_voc
from deeplab_caffe.solver.run import SignalHandler
from test_log import parse_log


NET = """name: "TinySeg"
layer { name: "data" type: "ImageSegData" top: "data" top: "label"
  include { phase: TRAIN }
  image_data_param { root_folder: "${DATA_ROOT}" source: "${DATA_ROOT}/list/train_aug.txt"
    label_type: PIXEL batch_size: 2 shuffle: true }
  transform_param { mean_value: 104 mean_value: 117 mean_value: 123 crop_size: 12 mirror: true } }
layer { name: "data" type: "ImageSegData" top: "data" top: "label"
  include { phase: TEST }
  image_data_param { root_folder: "${DATA_ROOT}" source: "${DATA_ROOT}/list/val.txt"
    label_type: PIXEL batch_size: 1 }
  transform_param { mean_value: 104 mean_value: 117 mean_value: 123 crop_size: 12 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1
    weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "score" type: "Convolution" bottom: "conv1" top: "score"
  convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
  loss_param { ignore_label: 255 normalization: BATCH_SIZE } }
layer { name: "accuracy" type: "Accuracy" bottom: "score" bottom: "label" top: "accuracy"
  include { phase: TEST } accuracy_param { ignore_label: 255 axis: 1 } }
"""

SOLVER = """net: "net.prototxt"
test_iter: 2
test_interval: 2
base_lr: 0.1
lr_policy: "step"
gamma: 0.5
stepsize: 2
momentum: 0.9
weight_decay: 0.0005
display: 1
max_iter: 4
snapshot: 2
snapshot_prefix: "${PREFIX}/train"
solver_mode: CPU
random_seed: 5
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    make_synthetic_voc(str(d / "voc"), num_train=4, num_val=2, size=16, num_classes=3, seed=1,
                       image_format="png")
    (d / "net.prototxt").write_text(NET)
    (d / "solver.prototxt").write_text(SOLVER)
    return d


class Result:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


def run_tool(argv):
    """tools/train_net.py's main() in this process (a fresh interpreter costs seconds of
    imports); its signal handlers are put back afterwards."""
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGHUP)}
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            code = train_net.main(argv)
    finally:
        for s, f in old.items():
            signal.signal(s, f)
    return Result(code, buf.getvalue())


def train(d, *extra, prefix="a"):
    return run_tool(["-solver", str(d / "solver.prototxt"), "--gpu", "-1", "--define",
                     f"DATA_ROOT={d / 'voc'}", "-D", f"PREFIX={d / prefix}", *extra])


def blobs(path):
    return [b for l in dc.io.read_caffemodel(path).layers for b in l.blobs]


def test_train_resume_and_log(setup):
    d = setup
    a = train(d)
    assert a.returncode == 0, a.stderr
    lines = a.stderr.splitlines()
    train_rows, test_rows = parse_log(lines)
    assert [r["NumIters"] for r in train_rows] == [0, 1, 2, 3]
    assert [r["NumIters"] for r in test_rows] == [0, 2, 4]
    assert set(test_rows[0]) >= {"accuracy", "loss"}
    assert "Optimization Done." in lines[-1]
    for n in (2, 4):
        assert (d / "a" / f"train_iter_{n}.solverstate").exists()
    # resume from iteration 2: the final weights are the same bytes.
    b = train(d, "--snapshot", str(d / "a" / "train_iter_2.solverstate"), prefix="b")
    assert b.returncode == 0, b.stderr
    assert "Restoring previous solver status from" in b.stderr
    assert (d / "a" / "train_iter_4.caffemodel").read_bytes() == \
        (d / "b" / "train_iter_4.caffemodel").read_bytes()
    # --weights finetunes from a snapshot: the first test equals a's test at iteration 4.
    c = train(d, "--weights", str(d / "a" / "train_iter_4.caffemodel"), "--iterations", "0",
              prefix="c")
    assert c.returncode == 0, c.stderr
    want = [l for l in a.stderr.splitlines() if "Test net output #" in l][-2:]
    got = [l for l in c.stderr.splitlines() if "Test net output #" in l]
    assert [l.split("] ")[1] for l in got] == [l.split("] ")[1] for l in want]


def test_two_cpu_ranks(setup):
    d = setup
    one = d / "a" / "train_iter_4.caffemodel"
    if not one.exists():
        assert train(d).returncode == 0
    log = d / "two.log"
    r = train(d, "--cpu-ranks", "2", "--log", str(log), prefix="two")
    assert r.returncode == 0, r.stderr
    # rank 0 alone logs and snapshots
    assert log.read_text().count("Snapshotting to binary proto file") == 2
    for x, y in zip(blobs(one), blobs(d / "two" / "train_iter_4.caffemodel")):
        np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6)


def test_bad_solver_exit_2(setup, tmp_path):
    (tmp_path / "s.prototxt").write_text('net: "x"\nbase_lr: 0.1\nlr_policy: "foo"\n')
    r = run_tool(["--solver", str(tmp_path / "s.prototxt"), "--gpu=-1"])
    assert r.returncode == 2, r.stderr
    assert f"{tmp_path / 's.prototxt'}:3:1: unknown lr_policy 'foo'" in r.stderr


def test_flags_and_signals():
    a = train_net.parse_args(["-solver=s.prototxt", "--gpu", "-1", "-weights", "a,b",
                         "--define", "A=1,B=x=y"])
    assert (a.solver, a.gpu, a.weights, a.defines) == ("s.prototxt", "-1", "a,b",
                                                       {"A": "1", "B": "x=y"})
    with pytest.raises(SystemExit):
        train_net.parse_args(["--solver", "s", "--weights", "w", "--snapshot", "x"])
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGHUP)}
    try:
        h = SignalHandler("stop", "snapshot")
        assert h() == "none"
        os.kill(os.getpid(), signal.SIGHUP)
        assert h() == "snapshot" and h() == "none"
        os.kill(os.getpid(), signal.SIGINT)
        assert h() == "stop"
    finally:
        for s, f in old.items():
            signal.signal(s, f)


def test_snapshot_write_failure_exit_74(setup, monkeypatch):
    # A full disk while the first snapshot's .solverstate is written: one line naming the file
    # and the last complete set (none yet), exit status 74, nothing of the set left behind.
    from deeplab_caffe.errors import EXIT_WRITE_FAILED

    def full(path, *a, **k):
        raise dc.WriteError(f"{path}: cannot write: No space left on device", path,
                            "No space left on device")
    monkeypatch.setattr("deeplab_caffe.solver.snapshot.write_solverstate", full)
    r = train(setup, prefix="full")
    assert r.returncode == EXIT_WRITE_FAILED == 74
    lines = [l for l in r.stderr.splitlines() if "cannot write" in l]
    assert len(lines) == 1 and "train_iter_2.solverstate: cannot write: No space left" in lines[0]
    assert "no snapshot set was completed" in lines[0] and "Traceback" not in r.stderr
    assert sorted(os.listdir(setup / "full")) == []
