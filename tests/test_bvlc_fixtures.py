"""BVLC master's own prototxts (../shared/fixtures/caffe/bvlc_master): every
models/*/{deploy,train_val}.prototxt and examples/**/*.prototxt builds unmodified (TRAIN and
TEST nets, a forward of the TEST net) with small data made where its data layers point
(bvlc_data_util), and every solver file takes one solver step on the CPU.

A file whose layer or solver types are not implemented yet (another part of issue 14 adds
them) must fail with the error that names the missing type and says it is BVLC's; the same
test asserts success once the type is registered.  The solver step runs with
test_initialization off (set on the loaded SolverSpec, the file is unchanged): a test pass of
test_iter batches at iteration 0 is not what this test checks.
"""
import glob
import math
import os

import pytest
import torch

from deeplab_caffe.errors import CaffeError, NetError, PrototxtError
from deeplab_caffe.layers import _all  # noqa: F401  (registers every type)
from deeplab_caffe.layers.base import LAYER_REGISTRY as REGISTRY
from deeplab_caffe.net import Net, included_layers
from deeplab_caffe.proto import parse_net
from deeplab_caffe.proto.bvlc_names import BVLC_UNTABLED_FIELDS
from deeplab_caffe.solver import SGDSolver, load_solver
from deeplab_caffe.solver.spec import NetSource

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
# What the solvers part of issue 14 adds; until then these fail with "not supported".
SOLVER_GAPS = ("'Adam'", "'AdaDelta'", "'RMSProp'", "snapshot_format BINARYPROTO")
UNTABLED = set().union(*BVLC_UNTABLED_FIELDS.values())


def untabled_field_error(err):
    """True when a parse error is a BVLC parameter message not tabled yet (another part of
    issue 14 adds it with its layer)."""
    text = str(err)
    return "is a BVLC Caffe field of" in text and any(f"'{f}'" in text for f in UNTABLED)


def solver_gap_error(err):
    text = str(err)
    return "supported" in text and any(g in text for g in SOLVER_GAPS)


@pytest.fixture(scope="module")
def caffe_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("caffe_root"))
    make_caffe_root(root, with_leveldb=HAVE_PLYVEL)
    cwd = os.getcwd()
    os.chdir(root)
    yield root
    os.chdir(cwd)


def layer_types(net_source, phase=None, stages=()):
    """The layer types of a net (of one phase's net when ``phase`` is given)."""
    spec = parse_net(net_source) if isinstance(net_source, str) else net_source
    layers = spec.layers if phase is None else included_layers(spec, phase, 0, stages)
    return {layer.type for layer in layers}


def stage_sets(rel):
    """The TEST nets to build: one per stage the file's include rules name (BVLC's
    mnist_autoencoder has its test data layers only in stages), else one without stages."""
    stages = sorted({st for layer in parse_net(rel).layers for rule in layer.include
                     for st in rule.getlist("stage")})
    return [(st,) for st in stages] or [()]


def missing_types(types):
    return sorted(t for t in types if t not in REGISTRY)


def expect_missing_type_error(build, missing):
    """The build fails naming one of the missing BVLC types."""
    with pytest.raises(NetError) as err:
        build()
    text = str(err.value)
    assert "is a BVLC Caffe layer type that deeplab_caffe does not implement" in text, text
    assert any(f"'{t}'" in text for t in missing), (missing, text)


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
    """Each net builds; each TEST net runs a forward with finite blobs.  Or, where a layer type
    is missing, each net that has it fails naming it."""
    for phase, stages in net_builds(rel):
        missing = missing_types(layer_types(rel, phase, stages))
        build = lambda: Net(rel, phase=phase, device="cpu", stages=stages)  # noqa: E731
        if missing:
            expect_missing_type_error(build, missing)
            print(f"{rel} {phase}{list(stages)}: stops at missing {missing}")
            continue
        net = build()
        if phase == "TEST":
            with torch.no_grad():
                net.forward()
            for name, blob in net.blobs.items():
                assert torch.isfinite(blob).all(), (rel, stages, name)
        close_layers(net)


def solver_nets(spec):
    sources = [spec.train_net] + list(spec.test_nets)
    return [s.source for s in sources if isinstance(s, NetSource)]


def run_solver_file(rel):
    """One SGDSolver step on the CPU (the update rule of the file's type), or, where a type or
    parameter of another part of issue 14 is missing, the error naming it."""
    try:
        spec = load_solver(rel)
        types = set()
        for src in solver_nets(spec):
            types |= layer_types(src)
    except PrototxtError as e:
        if solver_gap_error(e) or untabled_field_error(e):
            print(f"{rel}: stops at {e}")
            return
        raise
    missing = missing_types(types)
    spec.test_initialization = False
    if missing:
        expect_missing_type_error(lambda: SGDSolver(spec, device="cpu"), missing)
        print(f"{rel}: stops at missing {missing}")
        return
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
    try:
        parse_net(rel)
    except PrototxtError as e:
        assert untabled_field_error(e), str(e)
        print(f"{rel}: stops at {e}")
        return
    run_net_file(rel)
