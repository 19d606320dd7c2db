"""Solver files: fields, defaults, ${...} defines, net lookup and errors."""
import os

import pytest

import deeplab_caffe as dc
from deeplab_caffe.solver.spec import load_solver
from solver_util import ls_net

FULL = """# every field people write
net: "${NET}"
test_iter: 3
test_interval: 50
test_initialization: false
base_lr: 0.001
lr_policy: "step"
gamma: 0.1
power: 0.9
stepsize: 2000
stepvalue: 10
stepvalue: 20
max_iter: 6000
momentum: 0.9
weight_decay: 0.0005
regularization_type: "L1"
iter_size: 2
clip_gradients: 10
average_loss: 10
display: 10
snapshot: 2000
snapshot_prefix: "${EXP}/model/train"
snapshot_after_train: false
solver_mode: CPU
device_id: 1
random_seed: 1701
type: "SGD"
"""


@pytest.fixture
def net_file(tmp_path):
    p = tmp_path / "net.prototxt"
    p.write_text(ls_net())
    return p


def test_every_field(tmp_path, net_file):
    (tmp_path / "s.prototxt").write_text(FULL)
    s = load_solver(str(tmp_path / "s.prototxt"), defines={"NET": "net.prototxt", "EXP": "e"})
    assert (s.test_iter, s.test_interval, s.test_initialization) == ([3], 50, False)
    assert s.base_lr == pytest.approx(0.001) and s.lr_policy == "step"
    assert (s.gamma, s.stepsize, s.stepvalue, s.max_iter) == (pytest.approx(0.1), 2000,
                                                              [10, 20], 6000)
    assert s.power == pytest.approx(0.9) and s.momentum == pytest.approx(0.9)
    assert s.weight_decay == pytest.approx(0.0005) and s.regularization_type == "L1"
    assert (s.iter_size, s.clip_gradients, s.average_loss, s.display) == (2, 10, 10, 10)
    assert (s.snapshot, s.snapshot_prefix, s.snapshot_after_train) == (2000, "e/model/train",
                                                                        False)
    assert (s.solver_mode, s.device_id, s.random_seed, s.type) == ("CPU", 1, 1701, "SGD")
    # net: relative to the solver's folder (not found from the cwd), used for train and test.
    assert s.train_net.source == os.path.join(str(tmp_path), "net.prototxt")
    assert [n.source for n in s.test_nets] == [s.train_net.source]
    assert s.test_nets[0].phase == "TEST"


def test_defaults_and_legacy_type(tmp_path, net_file):
    s = load_solver(f'train_net: "{net_file}"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
                    'solver_type: NESTEROV\n')
    assert (s.iter_size, s.clip_gradients, s.average_loss, s.test_initialization) == \
        (1, -1, 1, True)
    assert (s.regularization_type, s.solver_mode, s.random_seed, s.type) == \
        ("L2", "GPU", -1, "Nesterov")
    assert s.snapshot_after_train and s.test_nets == []


def _err(text, tmp_path, match, cls=dc.PrototxtError):
    p = tmp_path / "bad.prototxt"
    p.write_text(text)
    with pytest.raises(cls, match=match) as e:
        load_solver(str(p))
    return e.value


@pytest.mark.parametrize("text,match,line", [
    ('net: "N"\nbase_lr: 0.1\nlr_policy: "foo"\n', r"bad\.prototxt:3:1: unknown lr_policy 'foo'",
     3),
    ('net: "N"\nbase_lr: 0.1\nlr_policy: "step"\ngamma: 0.1\n', r":3:1: .*needs 'stepsize'", 3),
    ('net: "N"\nbase_lr: 0.1\nlr_policy: "step"\ngamma: 0.1\nstepsize: 0\n',
     r":5:1: stepsize must be positive", 5),
    ('net: "N"\nbase_lr: 0.1\nlr_policy: "fixed"\ntype: "Adamax"\n',
     r":4:1: solver type 'Adamax' is not supported \(supported: SGD, Nesterov, AdaGrad, "
     r"RMSProp, AdaDelta, Adam\)", 4),
    ('net: "N"\nbase_lr: 0.1\nlr_policy: "fixed"\ntype: "SGD"\nsolver_type: SGD\n',
     r":5:1: .*solver_type \(enum\) and the new type \(string\) cannot both", 5),
    ('net: "N"\nbase_lr: 0.1\nlr_policy: "fixed"\niter_size: 0\n', r":4:1: iter_size must", 4),
    ('net: "N"\nbase_lr: 0.1\nlr_policy: "fixed"\nregularization_type: "L3"\n',
     r":4:1: regularization_type", 4),
    ('net: "N"\nbase_lr: 0.1\nlr_policy: "fixed"\ntype: "Nesterov"\n'
     'regularization_type: "L2sqrt"\n', r":5:1: .*'L2sqrt' .*SGD solver only, not for 'Nesterov'",
     5),
    ('net: "N"\nbase_lr: 0.1\nlr_policy: "fixed"\nsolver_type: ADAGRAD\nmomentum: 0.9\n',
     r":5:1: momentum cannot be used with AdaGrad", 5),
    ('net: "N"\nbase_lr: 0.1\nlr_policy: "fixed"\ntest_iter: 5\n', r":4:1: test nets are given",
     None),
    ('test_net: "N"\ntrain_net: "M"\nbase_lr: 0.1\nlr_policy: "fixed"\n',
     r"test_iter must be given once", None),
    ('net: "N"\ntrain_net: "M"\nbase_lr: 0.1\nlr_policy: "fixed"\n', r"give only one", None),
    ('base_lr: 0.1\nlr_policy: "fixed"\n', r"must name a train net", None),
    ('net: "N"\nlr_policy: "fixed"\n', r"base_lr is required", None),
    ('net: "N"\nbase_lr: 0.1\nlr_policy: "multistep"\ngamma: 0.1\nstepvalue: 5\nstepvalue: 3\n',
     r":5:1: stepvalue must increase", 5),
])
def test_bad_values(tmp_path, text, match, line):
    e = _err(text, tmp_path, match)
    if line is not None:
        assert e.line == line


def test_syntax_errors_are_the_parsers(tmp_path):
    e = _err('net: "N"\nbase_lr: 0.1\nlr_polcy: "fixed"\n', tmp_path, r"bad\.prototxt:3:1:")
    assert "lr_polcy" in str(e)
    _err('base_lr: ${LR}\n', tmp_path, r"bad\.prototxt:1:10:.*LR")


def test_message_errors_name_the_field():
    msg = dc.proto.parse('net: "N"\nbase_lr: 0.1\nlr_policy: "foo"\n', "SolverParameter", "bvlc")
    with pytest.raises(dc.CaffeError, match="solver field 'lr_policy': unknown lr_policy"):
        load_solver(msg)


def test_inline_net_param_and_test_state(tmp_path):
    text = ('net_param { ' + ls_net().replace("\n", " ") + ' }\nbase_lr: 0.1\n'
            'lr_policy: "fixed"\ntest_iter: 1\ntest_iter: 1\ntest_interval: 5\n'
            'test_state { stage: "a" }\ntest_state { stage: "b" level: 2 }\n')
    s = load_solver(text)
    assert len(s.test_nets) == 2 and s.test_nets[1].stages == ("b",)
    assert s.test_nets[1].level == 2
    assert s.train_net.source.layers[1].name == "ip"


def test_solver_mode_gpu_without_cuda(tmp_path, net_file):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    (tmp_path / "s.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n')
    with pytest.raises(dc.CaffeError, match="--gpu -1"):
        dc.SGDSolver(str(tmp_path / "s.prototxt"))
