"""What pycaffe's backward computes, as Caffe's Net::Init decides it (the flags below are worked
out by hand from net.cpp's two passes, as Caffe's log lines "X needs backward computation" /
"X does not need backward computation" would report them)."""
import numpy as np
import pytest

pytest.importorskip("google.protobuf", reason="pycaffe needs the protobuf package")

import deeplab_caffe.pycaffe as caffe  # noqa: E402
from deeplab_caffe.pycaffe.need_backward import NeedBackward  # noqa: E402

CONV = 'type: "Convolution" convolution_param { num_output: 2 kernel_size: 1 ' \
       'weight_filler { type: "gaussian" std: 1 } }'
NET = f"""name: "need" {{force}}
layer {{ name: "input" type: "Input" top: "data" top: "label" input_param {{
  shape {{ dim: 2 dim: 3 dim: 4 dim: 4 }} shape {{ dim: 2 dim: 2 dim: 4 dim: 4 }} }} }}
layer {{ name: "conv1" bottom: "data" top: "conv1" {CONV} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "frozen" bottom: "data" top: "f" param {{ lr_mult: 0 }} param {{ lr_mult: 0 }}
  {CONV} }}
layer {{ name: "sum" type: "Eltwise" bottom: "conv1" bottom: "f" top: "s" }}
layer {{ name: "side" bottom: "conv1" top: "side" {CONV} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "label" top: "loss"
  propagate_down: true propagate_down: false }}
"""
# input: nothing below it needs a diff; frozen: learns nothing and reads only data; side: its
# top reaches no loss.
LAYERS = ["input", "conv1", "relu1", "frozen", "sum", "side", "loss"]
NEEDS = [False, True, True, False, True, False, True]
BOTTOMS = [[], [False], [True], [False], [True, False], [False], [True, False]]


@pytest.fixture
def model(tmp_path):
    def write(force):
        p = tmp_path / "need.prototxt"
        p.write_text(NET.replace("{force}", "force_backward: true" if force else ""))
        return str(p)
    return write


def test_flags_follow_net_init(model):
    net = caffe.Net(model(False), caffe.TRAIN)
    assert net._layer_names == LAYERS
    need = NeedBackward(net._core)
    assert need.layer == NEEDS
    assert need.bottom == BOTTOMS
    assert need.param[LAYERS.index("frozen")] == [False, False]
    forced = NeedBackward(caffe.Net(model(True), caffe.TRAIN)._core)
    assert forced.layer == [True] * len(LAYERS)
    assert forced.bottom == [[True] * len(b) for b in BOTTOMS]


def test_backward_leaves_what_needs_none_untouched(model):
    net = caffe.Net(model(False), caffe.TRAIN)
    rng = np.random.RandomState(0)
    net.forward(data=rng.randn(2, 3, 4, 4), label=rng.randn(2, 2, 4, 4))
    net.backward()
    assert np.abs(net.params["conv1"][0].diff).sum() > 0
    for name in ("frozen", "side"):
        assert not any(b.diff.any() for b in net.params[name])
    assert not net.blobs["data"].diff.any() and not net.blobs["f"].diff.any()
