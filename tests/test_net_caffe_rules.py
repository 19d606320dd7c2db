"""Caffe's net-building rules that its own net.cpp / test_net.cpp fix: duplicate layer names,
tops produced by multiple sources, in-place only at the same index."""
import pytest
import torch

import deeplab_caffe as dc
from deeplab_caffe.errors import NetError
from deeplab_v1_util import config, voc_layout


DUP = """
name: "dup"
layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
layer { name: "fc" type: "Convolution" bottom: "x" top: "a"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "constant" value: 1 } } }
layer { name: "fc" type: "Convolution" bottom: "a" top: "b"
        convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "constant" value: 2 } } }
"""


def test_duplicate_layer_names_build_and_resolve_as_caffe():
    net = dc.Net(DUP)
    assert net.layer_names == ["data", "fc", "fc"]
    # layer_by_name: Caffe's name index keeps the last layer of a name.
    assert net.layer("fc") is net.layers[2]
    # pycaffe's params OrderedDict: first position, last layer's blobs.
    assert list(net.params) == ["fc"]
    assert net.params["fc"][0].shape == (3, 2, 1, 1)
    # Both layers' blobs are learnable, each once.
    assert [(n, i) for _, _, _, n, i in net.learnable_params()] == [
        ("fc", 0), ("fc", 1), ("fc", 0), ("fc", 1)]
    out = net.forward(x=torch.ones(1, 2, 3, 3))
    assert torch.all(out["b"] == 2 * 2 * 2)


def test_copy_from_fills_the_first_layer_of_a_duplicate_name(tmp_path):
    src = dc.Net(DUP.replace("num_output: 3", "num_output: 2"))
    with torch.no_grad():
        src.layers[1].blobs[0].fill_(5.0)
        src.layers[2].blobs[0].fill_(7.0)
    path = tmp_path / "w.caffemodel"
    src.save(path)
    net = dc.Net(DUP.replace("num_output: 3", "num_output: 2"))
    net.copy_from(path)
    # Caffe scans layer_names_ from the start for each file layer: both "fc" entries of the
    # file land in the first "fc" (the later one wins); the second keeps its filler.
    assert torch.all(net.layers[1].blobs[0] == 7.0)
    assert torch.all(net.layers[2].blobs[0] == 2.0)
    other = dc.Net(DUP.replace("num_output: 3", "num_output: 2"))
    other.share_trained_layers_with(src)
    assert other.layers[1].blobs[0] is src.layers[2].blobs[0]
    assert other.layers[2].blobs[0] is not src.layers[2].blobs[0]


@pytest.mark.parametrize("tops,ok", [
    ('top: "x"', True),                  # in place at index 0
    ('top: "y" top: "x"', False),        # the bottom's name at another index
    ('top: "y" top: "y"', False),        # one name twice
])
def test_top_in_place_only_at_the_same_index(tops, ok):
    text = ('layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 dim: 4 } } }\n'
            f'layer {{ name: "s" type: "Split" bottom: "x" {tops} }}')
    if ok:
        dc.Net(text)
        return
    with pytest.raises(NetError, match="produced by multiple sources"):
        dc.Net(text)


def test_deeplab_msc_test_prototxt_with_duplicate_fc_fusion_builds(tmp_path, monkeypatch):
    path = config("DeepLab-MSc", "test.prototxt")
    defines = voc_layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    net = dc.Net(path, phase="TEST", device="meta", defines=defines)
    fusion = [i for i, n in enumerate(net.layer_names) if n == "fc_fusion"]
    assert len(fusion) == 2
    assert net.layer("fc_fusion") is net.layers[fusion[-1]]


LOSS_NET = """
layer { name: "data" type: "Input" top: "x" top: "t"
        input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
layer { name: "c" type: "Convolution" bottom: "x" top: "y"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "constant" value: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


def _feeds():
    return {"x": torch.ones(1, 2, 3, 3), "t": torch.zeros(1, 2, 3, 3)}


def test_test_phase_forward_records_no_graph():
    net = dc.Net(LOSS_NET, phase="TEST")
    out = net.forward(**_feeds())
    assert not out["loss"].requires_grad and not net.blobs["y"].requires_grad
    assert net.loss.grad_fn is None
    with pytest.raises(dc.CaffeError, match="recorded no gradients.*force_backward"):
        net.backward()


@pytest.mark.parametrize("how", ["prototxt", "attribute", "train"])
def test_backward_when_caffe_would_run_one(how):
    text = ("force_backward: true\n" if how == "prototxt" else "") + LOSS_NET
    net = dc.Net(text, phase="TRAIN" if how == "train" else "TEST")
    if how == "attribute":
        net.force_backward = True
    out = net.forward(**_feeds())
    assert out["loss"].requires_grad
    net.backward()
    # loss = sum((2 - 0)^2) / 2 over 18 values, dy = 2: dW[o, i] = sum over 9 pixels of 2 * 1
    assert torch.all(net.params["c"][0].grad == 18.0)
    assert torch.all(net.params["c"][1].grad == 18.0)


def test_backward_with_top_diffs_on_a_net_without_loss():
    net = dc.Net(LOSS_NET.rsplit("layer {", 1)[0], phase="TEST")
    net.force_backward = True
    net.forward(**_feeds())
    net.backward(y=torch.full((1, 2, 3, 3), 0.5))
    assert torch.all(net.params["c"][1].grad == 4.5)


def test_the_files_own_state_stages_join_the_constructors():
    # test_net.cpp's stage tests: a net file's `state { stage }` stays, the stages given to the
    # constructor are added.
    text = """
    state { stage: "mine" }
    layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 } } }
    layer { name: "a" type: "Split" bottom: "x" top: "a" include { stage: "mine" } }
    layer { name: "b" type: "Split" bottom: "x" top: "b" include { stage: "mine" stage: "more" } }
    layer { name: "c" type: "Split" bottom: "x" top: "c" exclude { stage: "mine" } }
    """
    assert dc.Net(text).layer_names == ["d", "a"]
    net = dc.Net(text, stages=("more",))
    assert net.layer_names == ["d", "a", "b"] and net.stages == ("mine", "more")


SHARED = """
layer {{ name: "d" type: "Input" top: "x" input_param {{ shape {{ dim: 1 dim: 2 dim: 3 dim: 3 }} }} }}
layer {{ name: "a" type: "Convolution" bottom: "x" top: "y1" param {{ name: "w" {owner} }}
        convolution_param {{ num_output: 2 kernel_size: 1 bias_term: false }} }}
layer {{ name: "b" type: "Convolution" bottom: "x" top: "y2" param {{ name: "w" {sharer} }}
        convolution_param {{ num_output: 2 kernel_size: 1 bias_term: false }} }}
"""


@pytest.mark.parametrize("owner,sharer,lr,decay", [
    ("", "", 1.0, 1.0),
    ("", "lr_mult: 0", 0.0, 1.0),                        # a sharer's explicit 0 freezes it
    ("lr_mult: 2", "", 2.0, 1.0),
    ("lr_mult: 2 decay_mult: 0", "lr_mult: 2", 2.0, 0.0),
    ("", "decay_mult: 3", 1.0, 3.0),
])
def test_shared_param_multipliers_follow_append_param(owner, sharer, lr, decay):
    net = dc.Net(SHARED.format(owner=owner, sharer=sharer))
    (entry,) = net.learnable_params()
    assert entry[1:] == (lr, decay, "a", 0)


@pytest.mark.parametrize("owner,sharer", [("lr_mult: 1", "lr_mult: 2"),
                                          ("decay_mult: 1", "decay_mult: 0")])
def test_shared_param_with_different_explicit_multipliers_is_an_error(owner, sharer):
    with pytest.raises(NetError, match="shared param 'w' has mismatched"):
        dc.Net(SHARED.format(owner=owner, sharer=sharer))


def test_v1_blobs_lr_counts_as_given():
    text = """
    input: "x" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 3
    layers { name: "a" type: CONVOLUTION bottom: "x" top: "y1" param: "w" param: "b"
             convolution_param { num_output: 2 kernel_size: 1 } }
    layers { name: "b" type: CONVOLUTION bottom: "x" top: "y2" param: "w" param: "b"
             blobs_lr: 0 blobs_lr: 0 convolution_param { num_output: 2 kernel_size: 1 } }
    """
    assert [e[1] for e in dc.Net(text).learnable_params()] == [0.0, 0.0]


def test_convolution_pad_h_alone_means_pad_w_zero_except_in_deeplab_files():
    v2 = """
    layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 5 dim: 5 } } }
    layer { name: "c" type: "Convolution" bottom: "x" top: "y"
            convolution_param { num_output: 1 kernel_size: 3 pad_h: 2 } }
    """
    net = dc.Net(v2)
    assert net.layer("c").pad == (2, 0) and net.blob_shapes["y"] == (1, 1, 7, 3)
    # DeepLab's 2015 fork (like old BVLC) CHECKs that pad_h and pad_w come together.
    dl1 = """
    input: "x" input_dim: 1 input_dim: 1 input_dim: 5 input_dim: 5
    layers { name: "c" type: CONVOLUTION bottom: "x" top: "y"
             convolution_param { num_output: 1 kernel_size: 3 pad_h: 2 hole: 1 } }
    """
    with pytest.raises(NetError, match="pad_h and pad_w must be given together"):
        dc.Net(dl1)


@pytest.mark.parametrize("config_name,phase", [
    ("DeepLab-LargeFOV/train.prototxt", "TRAIN"), ("DeepLab-LargeFOV/test.prototxt", "TEST"),
    ("DeepLab-MSc/train.prototxt", "TRAIN"), ("DeepLab-MSc/test.prototxt", "TEST")])
def test_the_authors_configs_build_unmodified(config_name, phase, tmp_path, monkeypatch):
    path = config(*config_name.split("/"))
    defines = voc_layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    net = dc.Net(path, phase=phase, device="meta", defines=defines)
    if phase == "TRAIN":
        # The loss layer has no top: an anonymous one still counts, with loss weight 1.
        i = net.layer_names.index("loss")
        assert net._tops[i] == [] and net._loss_weights[i] == [1.0]
