"""BVLC master's own prototxts (../shared/fixtures/caffe/bvlc_master): every
models/*/{deploy,train_val}.prototxt and examples/**/*.prototxt builds unmodified (TRAIN and
TEST nets, a forward of the TEST net) with small data made where its data layers point
(bvlc_data_util), and every solver file takes one solver step on the CPU.

The solver step runs with
test_initialization off (set on the loaded SolverSpec, the file is unchanged): a test pass of
test_iter batches at iteration 0 is not what this test checks.
"""
import glob
import math
import os

import pytest
import torch

from deeplab_caffe.errors import CaffeError
from deeplab_caffe.net import Net
from deeplab_caffe.proto import parse_net
from deeplab_caffe.solver import SGDSolver, load_solver

from bvlc_data_util import FIXTURES, make_caffe_root

pytestmark = pytest.mark.skipif(not os.path.isdir(FIXTURES),
                                reason=f"BVLC fixtures absent ({FIXTURES})")

try:
    import plyvel  # noqa: F401
    HAVE_PLYVEL = True
except ImportError:
    HAVE_PLYVEL = False


def fixture_files():
    if not os.path.isdir(FIXTURES):
        return []
    files = glob.glob(os.path.join(FIXTURES, "models", "*", "deploy.prototxt")) + \
        glob.glob(os.path.join(FIXTURES, "models", "*", "train_val.prototxt")) + \
        glob.glob(os.path.join(FIXTURES, "models", "*", "*solver.prototxt")) + \
        glob.glob(os.path.join(FIXTURES, "examples", "**", "*.prototxt"), recursive=True)
    return sorted(os.path.relpath(f, FIXTURES) for f in files)


# Solver files whose net files are not in BVLC's repository: the 01-learning-lenet notebook
# writes examples/mnist/lenet_auto_{train,test}.prototxt (and runs from examples/, so the
# solver names them mnist/...).
NOTEBOOK_NETS = {"examples/mnist/lenet_auto_solver.prototxt": "mnist/lenet_auto_train.prototxt"}


@pytest.fixture(scope="module")
def caffe_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("caffe_root"))
    make_caffe_root(root, with_leveldb=HAVE_PLYVEL)
    cwd = os.getcwd()
    os.chdir(root)
    yield root
    os.chdir(cwd)


def stage_sets(rel):
    """The TEST nets to build: one per stage the file's include rules name (BVLC's
    mnist_autoencoder has its test data layers only in stages), else one without stages."""
    stages = sorted({st for layer in parse_net(rel).layers for rule in layer.include
                     for st in rule.getlist("stage")})
    return [(st,) for st in stages] or [()]


def needs_leveldb(rel):
    return rel.startswith("examples/siamese/") and not HAVE_PLYVEL


def net_builds(rel):
    """(phase, stages) of every net a file defines."""
    builds = [] if rel.endswith("deploy.prototxt") else [("TRAIN", ())]
    return builds + [("TEST", st) for st in stage_sets(rel)]


def close_layers(net):
    for layer in net.layers:
        if hasattr(layer, "close"):
            layer.close()


def run_net_file(rel):
    """Each net builds; each TEST net runs a forward with finite blobs."""
    for phase, stages in net_builds(rel):
        net = Net(rel, phase=phase, device="cpu", stages=stages)
        if phase == "TEST":
            with torch.no_grad():
                net.forward()
            for name, blob in net.blobs.items():
                assert torch.isfinite(blob).all(), (rel, stages, name)
        close_layers(net)


def run_solver_file(rel):
    """One SGDSolver step on the CPU (the update rule of the file's type)."""
    spec = load_solver(rel)
    spec.test_initialization = False
    solver = SGDSolver(spec, device="cpu")
    solver.step(1)
    assert solver.iter == 1
    assert math.isfinite(solver.smoothed_loss)
    for net in [solver.net] + solver.test_nets:
        close_layers(net)


@pytest.mark.parametrize("rel", fixture_files())
def test_bvlc_file(caffe_root, rel):
    if needs_leveldb(rel):
        pytest.skip("LevelDB sources need the optional package plyvel")
    if rel in NOTEBOOK_NETS:
        with pytest.raises(CaffeError, match=NOTEBOOK_NETS[rel]):
            SGDSolver(load_solver(rel), device="cpu")
        return
    if "solver" in os.path.basename(rel):
        run_solver_file(rel)
        return
    run_net_file(rel)
