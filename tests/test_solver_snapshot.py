"""Snapshots and resume: Caffe files, atomic writes, bit-for-bit continuation, signals."""
import os

import numpy as np
import pytest
import torch

import deeplab_caffe as dc
from deeplab_caffe.data.synthetic import make_synthetic_voc
from solver_util import dataset, make_solver


def seg_net(root, phase_batch=2):
    return f"""
name: "TinySeg"
layer {{ name: "data" type: "ImageSegData" top: "data" top: "label"
  include {{ phase: TRAIN }}
  image_data_param {{ root_folder: "{root}" source: "{root}/list/train_aug.txt"
    label_type: PIXEL batch_size: {phase_batch} shuffle: true }}
  transform_param {{ mean_value: 104 mean_value: 117 mean_value: 123 crop_size: 12
    mirror: true }} }}
layer {{ name: "data" type: "ImageSegData" top: "data" top: "label"
  include {{ phase: TEST }}
  image_data_param {{ root_folder: "{root}" source: "{root}/list/val.txt"
    label_type: PIXEL batch_size: 1 }}
  transform_param {{ mean_value: 104 mean_value: 117 mean_value: 123 crop_size: 12 }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
  convolution_param {{ num_output: 4 kernel_size: 3 pad: 1
    weight_filler {{ type: "gaussian" std: 0.01 }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "drop1" type: "Dropout" bottom: "conv1" top: "conv1"
  dropout_param {{ dropout_ratio: 0.5 }} }}
layer {{ name: "score" type: "Convolution" bottom: "conv1" top: "score"
  convolution_param {{ num_output: 3 kernel_size: 1
    weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
  loss_param {{ ignore_label: 255 }} }}
"""


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    make_synthetic_voc(str(root), num_train=5, num_val=2, size=16, num_classes=3, seed=0,
                       image_format="png")
    return root


def seg_solver(tmp, voc, extra=""):
    (tmp / "net.prototxt").write_text(seg_net(voc))
    (tmp / "solver.prototxt").write_text(
        'net: "net.prototxt"\nlr_policy: "step"\ngamma: 0.5\nstepsize: 2\nbase_lr: 0.1\n'
        'momentum: 0.9\nweight_decay: 0.001\nmax_iter: 6\nsnapshot: 3\nsolver_mode: CPU\n'
        'test_iter: 2\ntest_interval: 3\nrandom_seed: 7\n'
        f'snapshot_prefix: "{tmp}/snap/seg"\n' + extra)
    return dc.SGDSolver(str(tmp / "solver.prototxt"), log=dc.log.GLog(enabled=False))


def _state(s):
    return [p.detach().clone() for p, *_ in s.net.learnable_params()] + \
        [h.clone() for h in s.history]


def test_resume_is_bit_exact(tmp_path, voc):
    # net path relative to the solver file's folder (not the cwd): accepted.
    a = seg_solver(tmp_path, voc)
    seen, order = [], a.net.layer("data").order
    real_next = order.next_batch
    order.next_batch = lambda: seen.append(real_next()) or seen[-1]
    a.solve()
    final = _state(a)
    snap = tmp_path / "snap" / "seg_iter_3.solverstate"
    for ext in (".caffemodel", ".solverstate", ".rngstate"):
        assert (tmp_path / "snap" / f"seg_iter_3{ext}").exists()
        assert (tmp_path / "snap" / f"seg_iter_6{ext}").exists()
    assert not [f for f in os.listdir(tmp_path / "snap") if ".tmp" in f]
    st = dc.io.read_solverstate(snap)
    assert st.iter == 3 and st.learned_net.endswith("seg_iter_3.caffemodel")
    assert st.current_step == 1
    torch.manual_seed(12345)     # the resumed run must not depend on the state at start
    (tmp_path / "b").mkdir()
    b = seg_solver(tmp_path / "b", voc)
    b.solve(resume_file=str(snap))
    assert b.iter == 6
    for x, y in zip(final, _state(b)):
        assert torch.equal(x, y)
    # Without the .rngstate side file the data order still resumes, but dropout masks differ.
    os.remove(tmp_path / "snap" / "seg_iter_3.rngstate")
    (tmp_path / "c").mkdir()
    c = seg_solver(tmp_path / "c", voc)
    c.restore(str(snap))
    assert c.batches_served == [3, 2]
    assert c.net.layer("data").order.next_batch() == seen[3]


def test_resume_least_squares_equals_uninterrupted(tmp_path):
    a = make_solver(tmp_path, 'lr_policy: "step"\nbase_lr: 0.05\ngamma: 0.5\nstepsize: 2\n'
                    'momentum: 0.9\nweight_decay: 0.01\nmax_iter: 20\nsnapshot: 3\n'
                    'iter_size: 1\n')
    a.step(5)
    b = make_solver(tmp_path, 'lr_policy: "step"\nbase_lr: 0.05\ngamma: 0.5\nstepsize: 2\n'
                    'momentum: 0.9\nweight_decay: 0.01\nmax_iter: 20\nsnapshot: 3\n', seed=99)
    b.restore(str(tmp_path / "ls_iter_3.solverstate"))
    assert b.iter == 3 and b.net.layer("data")._pos == 4    # 3 batches of 4 out of 8 served
    b.step(2)
    for x, y in zip(_state(a), _state(b)):
        assert torch.equal(x, y)


def test_adagrad_resume_is_bit_exact(tmp_path):
    # AdaGrad's one history blob per parameter (the sums of squared gradients) goes through the
    # .solverstate, so the resumed run repeats the uninterrupted one bit for bit.
    text = ('type: "AdaGrad"\nlr_policy: "step"\nbase_lr: 0.1\ngamma: 0.5\nstepsize: 2\n'
            'weight_decay: 0.01\ndelta: 0.001\nmax_iter: 20\nsnapshot: 3\n')
    a = make_solver(tmp_path, text)
    a.step(3)
    at3 = [h.clone() for h in a.history]
    a.step(3)
    st = dc.io.read_solverstate(tmp_path / "ls_iter_3.solverstate")
    assert len(st.history) == 2
    for h, saved in zip(at3, st.history):
        assert torch.equal(h, torch.from_numpy(saved).reshape(h.shape))
    assert float(at3[0].min()) > 0
    (tmp_path / "b").mkdir()
    b = make_solver(tmp_path / "b", text, seed=99)
    b.restore(str(tmp_path / "ls_iter_3.solverstate"))
    b.step(3)
    for x, y in zip(_state(a), _state(b)):
        assert torch.equal(x, y)


def test_restore_mismatch_errors(tmp_path):
    a = make_solver(tmp_path, 'lr_policy: "fixed"\nbase_lr: 0.05\nmax_iter: 20\n')
    a.step(1)
    path = a.snapshot()
    other = tmp_path / "o"
    other.mkdir()
    b = make_solver(other, 'lr_policy: "fixed"\nbase_lr: 0.05\nmax_iter: 20\n',
                    net_kw=dict(b_lr=1))
    dc.io.write_solverstate(other / "bad.solverstate", 1, "", [np.zeros((1, 5)), np.zeros(1)])
    with pytest.raises(dc.CaffeError, match="history blob 0"):
        b.restore(str(other / "bad.solverstate"))
    dc.io.write_solverstate(other / "gone.solverstate", 1, str(tmp_path / "nope.caffemodel"),
                            [h.numpy() for h in a.history])
    with pytest.raises(dc.CaffeError, match="nope.caffemodel"):
        b.restore(str(other / "gone.solverstate"))
    # learned_net written relative to another cwd: found beside the .solverstate.
    dc.io.write_solverstate(tmp_path / "rel.solverstate", 1, "elsewhere/ls_iter_1.caffemodel",
                            [h.numpy() for h in a.history])
    b.restore(str(tmp_path / "rel.solverstate"))
    assert torch.equal(b.net.params["ip"][0], a.net.params["ip"][0])
    assert path.endswith("ls_iter_1.solverstate")


def test_signal_actions(tmp_path):
    s = make_solver(tmp_path, 'lr_policy: "fixed"\nbase_lr: 0.05\nmax_iter: 10\n')
    actions = iter(["none", "snapshot", "none", "stop"])
    s.action_request = lambda: next(actions, "none")
    s.solve()
    # SIGHUP-like snapshot at 2, stop after 4, and the final snapshot (snapshot_after_train).
    names = sorted(f for f in os.listdir(tmp_path) if f.endswith(".solverstate"))
    assert names == ["ls_iter_2.solverstate", "ls_iter_4.solverstate"]
    assert s.iter == 4 and s.requested_early_exit


def test_v1_net_snapshots_v1(tmp_path):
    from solver_util import C
    (tmp_path / "v1.prototxt").write_text(f"""
name: "V1"
layers {{ name: "data" type: MEMORY_DATA top: "data" top: "y"
  memory_data_param {{ batch_size: 4 channels: {C} height: 1 width: 1 }} }}
layers {{ name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip" blobs_lr: 1 blobs_lr: 2
  inner_product_param {{ num_output: 1 weight_filler {{ type: "gaussian" std: 1 }} }} }}
layers {{ name: "loss" type: EUCLIDEAN_LOSS bottom: "ip" bottom: "y" top: "loss" }}
""")
    (tmp_path / "s.prototxt").write_text(
        f'train_net: "{tmp_path}/v1.prototxt"\nlr_policy: "fixed"\nbase_lr: 0.01\n'
        f'max_iter: 2\nsolver_mode: CPU\nsnapshot_prefix: "{tmp_path}/v1"\n')
    s = dc.SGDSolver(str(tmp_path / "s.prototxt"), log=dc.log.GLog(enabled=False))
    s.net.layer("data").set_input_arrays(*dataset())
    s.solve()
    m = dc.io.read_caffemodel(tmp_path / "v1_iter_2.caffemodel")
    assert m.format != "v2" and [l.name for l in m.layers] == ["ip"]
    st = dc.io.read_solverstate(tmp_path / "v1_iter_2.solverstate")
    assert st.legacy == [True, True]
