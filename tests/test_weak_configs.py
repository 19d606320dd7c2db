"""The DeepLab v1 authors' weakly supervised config (DeepLab-Weak-EM-Adapt, read from
../shared/fixtures/deeplab_v1; skipped when absent) builds as released and takes one SGD step on a
tiny synthetic set.

The file is used unmodified: its ``${...}`` placeholders are filled as the authors' sub.sed does
(text substitution, run_pascal's values: EXP=voc12 relative to the working folder), and its data
layer reads a list the test writes.  The step runs on the CPU, so the parsed net's data layer gets
crop_size 33 (= 32 * 2 - 31, DeepLab's alignment rule) and batch_size 2 instead of 321 and 20
(the file has no placeholder for them), and the weights, which the file leaves to an init
.caffemodel (no fillers: zeros), are random.
"""
import os
import re

import pytest
import torch

from deeplab_caffe.data.synthetic import make_synthetic_voc
from deeplab_caffe.net import Net
from deeplab_caffe.proto import parse_net
from deeplab_caffe.solver.sgd import SGDSolver
from deeplab_caffe.solver.spec import load_solver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "..", "shared", "fixtures", "deeplab_v1")
WEAK = os.path.join(FIX, "config", "DeepLab-Weak-EM-Adapt")
pytestmark = pytest.mark.skipif(not os.path.isdir(WEAK),
                                reason="no ../shared/fixtures/deeplab_v1")
NUM_LABELS = 4


def sed_fill(text, values):
    """sub.sed's substitutions: every placeholder it names, replaced by its value ("" unset, as
    an unset shell variable); placeholders it does not name stay as they are."""
    with open(os.path.join(FIX, "train-DeepLab", "sub.sed")) as f:
        names = re.findall(r"s,\$\{(\w+)\},", f.read())
    assert "NUM_LABELS" in names and "EXP" in names
    for name in names:
        text = text.replace("${%s}" % name, values.get(name, ""))
    return text


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """run_pascal's layout: <root>/voc12/{list,config/<NET_ID>}, the data under <root>/data."""
    root = tmp_path_factory.mktemp("weak")
    voc = make_synthetic_voc(root / "data", num_train=3, num_val=1, size=(40, 48),
                             num_classes=NUM_LABELS)
    values = {"DATA_ROOT": str(root / "data"), "EXP": "voc12", "TRAIN_SET": "train_aug",
              "NET_ID": "DeepLab-Weak-EM-Adapt", "NUM_LABELS": str(NUM_LABELS)}
    cfg = root / "voc12" / "config" / values["NET_ID"]
    cfg.mkdir(parents=True)
    (root / "voc12" / "list").mkdir()
    with open(voc.lists["train_aug"]) as f:
        (root / "voc12" / "list" / "train_aug.txt").write_text(f.read())
    for name in ("train", "solver", "solver2"):
        with open(os.path.join(WEAK, f"{name}.prototxt")) as f:
            (cfg / f"{name}_train_aug.prototxt").write_text(sed_fill(f.read(), values))
    return root, cfg


def test_weak_em_adapt_train_net_builds_as_released(layout, monkeypatch):
    root, cfg = layout
    monkeypatch.chdir(root)
    net = Net(str(cfg / "train_train_aug.prototxt"), phase="TRAIN", device="meta")
    types = dict(zip(net.layer_names, (l.type_name for l in net.layers)))
    assert types["label_weak"] == "UniqueLabel"
    assert types["fc8_biased"] == "AdaptiveBiasChannel"
    assert types["label_estep"] == "ArgMax" and net.layer("label_estep").fork
    shapes = net.blob_shapes
    assert shapes["label_weak"] == (20, 10, 1, 1)
    assert shapes["fc8_voc12"] == shapes["fc8_biased"] == (20, NUM_LABELS, 41, 41)
    assert shapes["label_estep"] == shapes["label_shrink"] == (20, 1, 41, 41)
    assert net.layers[net.layer_names.index("loss")].num_top == 1    # automatic loss top


def test_weak_em_adapt_takes_one_sgd_step(layout, monkeypatch):
    root, cfg = layout
    monkeypatch.chdir(root)
    # The solver's snapshot_prefix has ${MODEL}, which sub.sed does not fill: Caffe keeps the
    # text as it is, and so does this define.
    spec = load_solver(str(cfg / "solver_train_aug.prototxt"), defines={"MODEL": "${MODEL}"})
    assert spec.snapshot_prefix == "voc12/model/DeepLab-Weak-EM-Adapt/${MODEL}_train"
    spec2 = load_solver(str(cfg / "solver2_train_aug.prototxt"), defines={"MODEL": "${MODEL}"})
    assert (spec2.max_iter, spec2.train_net.source) == (8000, spec.train_net.source)
    spec.solver_mode = "CPU"
    net_spec = parse_net(str(cfg / "train_train_aug.prototxt"))
    (data,) = [l for l in net_spec.layers if l.type == "ImageSegData"]
    data.message["transform_param"]["crop_size"] = 33
    data.message["image_data_param"]["batch_size"] = 2
    spec.train_net.source = net_spec
    torch.manual_seed(0)
    solver = SGDSolver(spec, device="cpu")
    with torch.no_grad():
        for p, *_ in solver.net.learnable_params():
            p.normal_(0, 0.01)
    before = {n: [p.detach().clone() for p in ps] for n, ps in solver.net.params.items()}
    solver.step(1)
    assert solver.iter == 1 and torch.isfinite(solver.net.loss)
    for name in ("fc8_voc12", "fc7", "fc6"):
        assert not torch.equal(solver.net.params[name][0].detach(), before[name][0]), name
    blobs = solver.net.blobs
    for n in range(2):
        strong = blobs["label_strong"][n].reshape(-1)
        present = sorted(set(strong[strong != 255].tolist()))
        weak = blobs["label_weak"][n, :, 0, 0].tolist()
        assert weak == present + [-1.0] * (10 - len(present))
        # The E-step's labels come from the image's own classes only (suppress_others).
        assert set(blobs["label_estep"][n].reshape(-1).tolist()) <= set(present)
