"""Caffe's Layer::SetUp as the base class runs it: the blob counts each type declares (checked
once, before the type's own set-up, errors naming the layer), AutoTopBlobs (the net adds
anonymous tops, a loss layer without a top still adds its loss), the data transform a data blob
carries, and Net.share_trained_layers_with."""
import numpy as np
import pytest
import torch

import deeplab_caffe as dc
from deeplab_caffe.data.transform import DEEPLAB_MEAN_BGR, SegTransform, image_from_data
from deeplab_caffe.errors import CaffeError
from layer_util import expect_net_error, make_layer

S4 = (1, 3, 6, 6)
CONV = {"convolution_param": {"num_output": 2, "kernel_size": 1}}
CRF = {"dense_crf_param": {"pos_w": [3.0], "pos_xy_std": [3.0]}}


@pytest.mark.parametrize("type_name,params,bottoms,tops,words", [
    ("Convolution", CONV, [], ["y"], ["at least 1 bottom"]),
    ("Convolution", CONV, [S4, S4], ["y"], ["one top per bottom", "2 bottom(s) and 1 top(s)"]),
    ("Convolution", CONV, [S4], [], ["at least 1 top"]),
    ("ReLU", {}, [S4, S4], ["y"], ["takes 1 bottom"]),
    ("ReLU", {}, [S4], ["y", "z"], ["takes 1 top"]),
    ("Eltwise", {}, [S4], ["y"], ["at least 2 bottom"]),
    ("Silence", {}, [S4], ["y"], ["takes 0 top"]),
    ("Split", {}, [S4], [], ["at least 1 top"]),
    ("Pooling", {"pooling_param": {"kernel_size": 2}}, [S4], ["a", "b", "c"], ["at most 2 top"]),
    ("SoftmaxWithLoss", {}, [S4, (1, 1, 6, 6)], ["l", "p", "q"], ["at most 2 top"]),
    ("EuclideanLoss", {}, [S4], ["l"], ["takes 2 bottom"]),
    ("DenseCRF", CRF, [S4], ["q"], ["at least 2 bottom"]),
    ("DenseCRF", CRF, [S4, (1, 1, 1, 2), S4, S4], ["q"], ["at most 3 bottom"]),
    ("DummyData", {}, [S4], ["y"], ["takes 0 bottom"]),
    ("ImageSegData", {}, [], ["a", "b", "c", "d"], ["takes 3 top"]),
    ("MemoryData", {}, [], ["data"], ["takes 2 top"]),
])
def test_declared_blob_counts_are_checked_before_the_layers_set_up(type_name, params, bottoms,
                                                                   tops, words):
    layer = make_layer(type_name, params, bottom=[f"b{i}" for i in range(len(bottoms))],
                       top=tops)
    # layer_setup would fail on these parameters or counts in its own way (or not at all)
    layer.layer_setup = lambda shapes: pytest.fail("layer_setup ran before the count check")
    expect_net_error(lambda: layer.setup(bottoms), type_name, *words)


def test_auto_top_blobs_count_the_anonymous_tops():
    loss = make_layer("SoftmaxWithLoss", {}, bottom=("s", "l"), top=())
    assert loss.num_top == 1 and loss.setup([S4, (1, 1, 6, 6)]) == [()]
    assert make_layer("EuclideanLoss", {}, bottom=("a", "b"), top=()).num_top == 1
    assert make_layer("ImageSegData", {}, bottom=(), top=("data",)).num_top == 3
    assert make_layer("ReLU", {}, top=()).num_top == 0           # no AutoTopBlobs


NET = """
layer { name: "data" type: "Input" top: "x" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 }
                      shape { dim: 2 dim: 1 dim: 4 dim: 4 } } }
layer { name: "score" type: "Convolution" bottom: "x" top: "score"
        convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "gaussian" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" TOP }
layer { name: "l2" type: "EuclideanLoss" bottom: "score" bottom: "score" TOP2 loss_weight: 0.5 }
"""


def test_a_loss_layer_without_top_still_adds_its_loss():
    torch.manual_seed(0)
    named = dc.Net(NET.replace("TOP2", 'top: "l2"').replace("TOP", 'top: "loss"'), phase="TRAIN")
    anonymous = dc.Net(NET.replace("TOP2", "").replace("TOP", ""), phase="TRAIN")
    anonymous.params["score"][0].data.copy_(named.params["score"][0].data)
    x = torch.randn(2, 3, 4, 4)
    label = torch.randint(0, 3, (2, 1, 4, 4)).float()
    out_named = named.forward(x=x, label=label)
    out_anonymous = anonymous.forward(x=x, label=label)
    assert sorted(out_named) == ["l2", "loss"] and named.loss > 0
    assert out_anonymous == {} and "loss" not in anonymous.blobs
    assert anonymous.outputs == []
    torch.testing.assert_close(anonymous.loss, named.loss, rtol=0, atol=0)
    torch.testing.assert_close(anonymous.loss, out_named["loss"] + 0.5 * out_named["l2"])


def test_too_many_loss_weights_counts_the_anonymous_tops():
    text = NET.replace("TOP2", "").replace("TOP", "loss_weight: 1 loss_weight: 2")
    with pytest.raises(dc.errors.NetError, match="2 loss_weight values for 1 tops"):
        dc.Net(text, phase="TRAIN")


def test_image_seg_data_listed_with_one_top(tmp_path):
    from deeplab_caffe.data.synthetic import make_synthetic_voc
    root = tmp_path / "syn"
    make_synthetic_voc(str(root), num_train=1, num_val=1, size=(20, 20), num_classes=3, seed=0)
    net = dc.Net(f"""
    layers {{ name: "data" type: IMAGE_SEG_DATA top: "data"
      image_data_param {{ root_folder: "{root}" source: "{root}/list/val.txt" batch_size: 1
                          label_type: NONE }}
      transform_param {{ mean_value: 1 crop_size: 21 }} }}""", phase="TEST")
    assert net.outputs == ["data"] and tuple(net.forward()["data"].shape) == (1, 3, 21, 21)


def test_transform_inverse_round_trips_scale_and_one_mean_value():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for t in (SegTransform(mean_value=(104.008, 116.669, 122.675), scale=0.017),
              SegTransform(mean_value=(128.0,), scale=2.0), SegTransform()):
        data, _, _ = t(img, np.zeros((5, 7), np.uint8), rng)
        back = t.image_from_data(torch.from_numpy(data)[None])
        assert torch.equal(back[0], torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32)))
    clipped = image_from_data(torch.full((1, 3, 1, 1), 200.0))
    assert clipped.flatten().tolist() == [255.0] * 3
    assert image_from_data(torch.full((1, 3, 1, 1), -0.4)).flatten().tolist() == \
        [round(m - 0.4) for m in DEEPLAB_MEAN_BGR]


def test_blob_transforms_follow_the_data_blob_and_stop_at_a_rewrite():
    net = dc.Net("""
    layer { name: "m" type: "MemoryData" top: "data" top: "label"
            memory_data_param { batch_size: 1 channels: 3 height: 4 width: 4 }
            transform_param { mean_value: 5 scale: 0.5 } }
    layer { name: "r" type: "ReLU" bottom: "data" top: "data" }""")
    assert net.layer("m").top_transforms()[0] == SegTransform(mean_value=(5.0,), scale=0.5,
                                                              phase="TEST")
    assert net.blob_transforms == {"data": None, "label": None}    # ReLU rewrote "data"


SHARE = """
name: "N"
layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 } } }
layer { name: "c1" type: "Convolution" bottom: "x" top: "y"
        convolution_param { num_output: C1 kernel_size: 3 weight_filler { type: "gaussian" } } }
layer { name: "c2" type: "Convolution" bottom: "y" top: "z"
        convolution_param { num_output: 2 kernel_size: 1 BIAS weight_filler { type: "gaussian" } } }
"""


def test_share_trained_layers_with():
    train = dc.Net(SHARE.replace("C1", "3").replace("BIAS", ""), phase="TRAIN")
    test = dc.Net(SHARE.replace("C1", "3").replace("BIAS", "").replace('"c2"', '"other"'))
    test.share_trained_layers_with(train)
    assert test.params["c1"][0] is train.params["c1"][0]
    assert test.params["c1"][1] is train.params["c1"][1]
    assert test.params["other"][0] is not train.params["c2"][0]      # no such layer: skipped
    with torch.no_grad():
        train.params["c1"][0].add_(1.0)
    x = torch.randn(1, 2, 5, 5)
    test.forward(x=x)
    train.forward(x=x)
    torch.testing.assert_close(test.blobs["y"], train.blobs["y"], rtol=0, atol=0)
    wide = dc.Net(SHARE.replace("C1", "4").replace("BIAS", ""))
    with pytest.raises(CaffeError, match="cannot share param 0 of layer 'c1'"):
        wide.share_trained_layers_with(train)
    no_bias = dc.Net(SHARE.replace("C1", "3").replace("BIAS", "bias_term: false"))
    with pytest.raises(CaffeError, match="layer 'c2' has 1 blobs"):
        no_bias.share_trained_layers_with(train)
