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
