"""Schema tables (numbers from BVLC's and DeepLab v1's caffe.proto, see docs/caffe_formats.md),
dialect detection and the upgrade to one NetSpec."""
import glob
import os

import pytest

from deeplab_caffe.errors import PrototxtError
from deeplab_caffe.proto import (get_schema, net_to_text, parse, parse_file, parse_net,
                                 to_text, upgrade_net)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "caffe")


def num(schema, message, field):
    return get_schema(schema).messages[message].by_name[field].number


# -- tables -------------------------------------------------------------------------------------
def test_net_and_layer_numbers():
    assert num("bvlc", "NetParameter", "layer") == 100
    assert num("bvlc", "NetParameter", "layers") == 2
    assert num("bvlc", "NetParameter", "input_shape") == 8
    assert "layer" not in get_schema("deeplab_v1").messages["NetParameter"].by_name
    v2 = get_schema("bvlc").messages["LayerParameter"].by_name
    assert {k: v2[k].number for k in ("param", "include", "phase", "propagate_down",
                                      "convolution_param", "input_param", "pooling_param")} == \
        dict(param=6, include=8, phase=10, propagate_down=11, convolution_param=106,
             input_param=143, pooling_param=121)
    assert num("bvlc", "ParamSpec", "lr_mult") == 3 and num("bvlc", "ParamSpec", "decay_mult") == 4
    assert "ParamSpec" not in get_schema("deeplab_v1").messages


def test_v1_numbers_and_clashes():
    v1 = get_schema("bvlc").messages["V1LayerParameter"]
    dl = get_schema("deeplab_v1").messages["LayerParameter"]
    for f in ("bottom", "top", "name", "type", "blobs", "blobs_lr", "weight_decay", "include",
              "loss_weight", "transform_param", "param", "convolution_param", "softmax_param"):
        assert v1.by_name[f].number == dl.by_name[f].number
    assert (v1.by_name["blobs_lr"].number, v1.by_name["param"].number) == (7, 1001)
    assert v1.by_number[42].name == "loss_param"
    assert dl.by_number[42].name == "seg_accuracy_param"
    assert {n: dl.by_name[n].number for n in ("interp_param", "softmaxloss_param",
                                              "padding_param", "dense_crf_param")} == \
        dict(interp_param=43, softmaxloss_param=44, padding_param=45, dense_crf_param=48)
    assert dl.by_name["strict_dim"].number == 1003 and dl.by_name["strict_dim"].default is True
    assert "loss_param" not in dl.by_name
    bv, de = get_schema("bvlc").enums, get_schema("deeplab_v1").enums
    assert sorted(bv["V1LayerParameter.LayerType"].values()) == list(range(40))
    assert bv["V1LayerParameter.LayerType"]["DECONVOLUTION"] == 39
    dtypes = de["LayerParameter.LayerType"]
    assert sorted(dtypes.values()) == list(range(57)) and "DECONVOLUTION" not in dtypes
    assert (dtypes["IMAGE_SEG_DATA"], dtypes["INTERP"], dtypes["DENSE_CRF"],
            dtypes["ONEHOT"]) == (39, 41, 45, 56)
    assert (dtypes["CONVOLUTION"], dtypes["SOFTMAX_LOSS"], dtypes["SILENCE"]) == (4, 21, 36)


def test_convolution_hole_vs_dilation():
    bc = get_schema("bvlc").messages["ConvolutionParameter"]
    dc = get_schema("deeplab_v1").messages["ConvolutionParameter"]
    assert (bc.by_number[17].name, bc.by_number[18].name) == ("force_nd_im2col", "dilation")
    assert bc.by_number[18].repeated and bc.by_name["engine"].number == 15
    assert [(dc.by_number[n].name, dc.by_number[n].default) for n in (17, 18, 19)] == \
        [("hole", 1), ("hole_h", 1), ("hole_w", 1)]
    assert not dc.by_name["pad"].repeated and bc.by_name["pad"].repeated


def test_blobs_packed_and_dl1_subset():
    bp = get_schema("bvlc").messages["BlobProto"]
    assert [f.number for f in get_schema("deeplab_v1").messages["BlobProto"].fields] == \
        [1, 2, 3, 4, 5, 6]
    assert bp.by_name["data"].packed and bp.by_name["diff"].packed and \
        bp.by_name["double_data"].packed
    assert get_schema("bvlc").messages["BlobShape"].by_name["dim"].packed
    assert get_schema("bvlc").messages["BlobShape"].by_name["dim"].type == "int64"
    assert not get_schema("bvlc").messages["LayerParameter"].by_name["loss_weight"].packed


def test_deeplab_messages():
    s = get_schema("deeplab_v1")
    sl = s.messages["SoftmaxLossParameter"]
    assert (sl.by_name["weight_source"].number, sl.by_name["ignore_label"].number) == (16, 2)
    assert sl.by_name["ignore_label"].repeated
    im = s.messages["ImageDataParameter"]
    assert [(im.by_number[n].name, im.by_number[n].default) for n in (13, 14, 15, 16)] == \
        [("has_label", True), ("max_labels", 1), ("ignore_label", 255), ("label_type", "IMAGE")]
    assert s.enums["ImageDataParameter.LabelType"] == {"NONE": 0, "IMAGE": 1, "PIXEL": 2}
    ip = s.messages["InterpParameter"]
    assert [f.name for f in ip.fields] == ["height", "width", "zoom_factor", "shrink_factor",
                                           "pad_beg", "pad_end"]
    assert s.messages["DenseCRFParameter"].by_name["max_iter"].default == 10
    assert s.enums["SegAccuracyParameter.AccuracyMetric"]["PixelIOU"] == 2
    assert "round_mode" not in s.messages["PoolingParameter"].by_name
    assert "variance_norm" not in s.messages["FillerParameter"].by_name


def test_solver_tables():
    b = get_schema("bvlc").messages["SolverParameter"]
    expect = dict(train_net=1, test_net=2, test_iter=3, test_interval=4, base_lr=5, display=6,
                  max_iter=7, lr_policy=8, gamma=9, power=10, momentum=11, weight_decay=12,
                  stepsize=13, snapshot=14, snapshot_prefix=15, snapshot_diff=16,
                  solver_mode=17, device_id=18, test_compute_loss=19, random_seed=20,
                  train_net_param=21, test_net_param=22, debug_info=23, net=24, net_param=25,
                  train_state=26, test_state=27, snapshot_after_train=28,
                  regularization_type=29, solver_type=30, delta=31, test_initialization=32,
                  average_loss=33, stepvalue=34, clip_gradients=35, iter_size=36,
                  snapshot_format=37, rms_decay=38, momentum2=39, type=40,
                  layer_wise_reduce=41, weights=42)
    assert {f.name: f.number for f in b.fields} == expect
    assert (b.by_name["random_seed"].default, b.by_name["clip_gradients"].default,
            b.by_name["type"].default, b.by_name["solver_mode"].default) == (-1, -1.0, "SGD", "GPU")
    d = get_schema("deeplab_v1").messages["SolverParameter"]
    assert max(f.number for f in d.fields) == 34 and "iter_size" not in d.by_name
    assert list(get_schema("deeplab_v1").enums["SolverParameter.SolverType"]) == \
        ["SGD", "NESTEROV", "ADAGRAD"]
    st = get_schema("bvlc").messages["SolverState"]
    assert [(f.name, f.number) for f in st.fields] == \
        [("iter", 1), ("learned_net", 2), ("history", 3), ("current_step", 4)]


@pytest.mark.parametrize("name", ["bvlc", "deeplab_v1", "normalized"])
def test_tables_are_consistent(name):
    s = get_schema(name)
    for m in s.messages.values():
        for f in m.fields:
            if f.type == "message":
                assert f.type_name in s.messages, (m.name, f.name)
            elif f.type == "enum":
                assert f.type_name in s.enums, (m.name, f.name)
                assert f.default is None or f.default in s.enums[f.type_name], (m.name, f.name)
            assert not f.packed or f.repeated


# -- dialects -----------------------------------------------------------------------------------
V2 = '''name: "n"
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 8 pad: 2 kernel_size: 3 dilation: 2
    weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "pool" bottom: "label" top: "loss"
  include { phase: TRAIN } }
'''
V1 = '''name: "n"
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 8 pad: 2 kernel_size: 3 %s
    weight_filler { type: "gaussian" std: 0.01 } } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "pool" bottom: "label" top: "loss"
  include: { phase: TRAIN } }
'''


def same_layers(a, b):
    assert [(l.name, l.type, l.bottom, l.top, l.param, l.loss_weight) for l in a.layers] == \
        [(l.name, l.type, l.bottom, l.top, l.param, l.loss_weight) for l in b.layers]
    for x, y in zip(a.layers, b.layers):
        assert x.message == y.message, (x.message, y.message)


def test_three_dialects_upgrade_to_the_same_spec():
    v2 = parse_net(V2)
    bv = parse_net(V1 % "dilation: 2")
    dl = parse_net(V1 % "hole: 2")
    assert (v2.dialect, bv.dialect, dl.dialect) == ("v2", "v1", "deeplab_v1")
    same_layers(v2, bv)
    same_layers(v2, dl)
    conv = dl.layers[0]
    assert conv.message["convolution_param"]["dilation"] == [2]
    assert conv.message["convolution_param"]["pad"] == [2]
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    assert dl.layers[3].include[0]["phase"] == "TRAIN"
    assert conv.where == "<string>:2:1"


def test_undistinguished_v1_is_bvlc():
    assert parse_net(V1 % "").dialect == "v1"


@pytest.mark.parametrize("text,line,col,words", [
    (V1 % "hole: 2" + 'layers { name: "l" type: SOFTMAX_LOSS loss_param { ignore_label: 1 } }',
     11, 39, ["mixes", "hole", "loss_param"]),
    (V1 % "" + 'layers { name: "d" type: DECONVOLUTION }\nlayers { type: INTERP }', 12, 16,
     ["INTERP", "DECONVOLUTION"]),
    ('layer { name: "a" type: "ReLU" }\nlayers { name: "b" type: RELU }', 2, 1,
     ["either", "not both"]),
    ('layer { name: "a" type: "Convolution" convolution_param { hole: 2 } }', 1, 59,
     ["hole", "dilation"]),
    ('layers { name: "a" }', 1, 1, ["no type"]),
    ('layers { name: "a" type: NONE }', 1, 1, ["no V2 equivalent"]),
    ('layers { name: "c" type: CONVOLUTION\n convolution_param { hole: 2 hole_h: 2 hole_w: 2 } }',
     2, 2, ["not both"]),
    ('layers { name: "c" type: CONVOLUTION\n convolution_param { hole_h: 2 } }', 2, 2,
     ["together"]),
    ('input: "data"\ninput_dim: 1\ninput_dim: 3\nlayer { name: "a" type: "ReLU" }', 1, 1,
     ["input_dim", "4"]),
    ('input_dim: 1', 1, 1, ["without"]),
    ('input: "a" input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1 input_shape { dim: 1 }',
     1, 1, ["not both"]),
])
def test_dialect_and_upgrade_errors(text, line, col, words):
    with pytest.raises(PrototxtError) as e:
        parse_net(text)
    assert (e.value.line, e.value.column) == (line, col), str(e.value)
    for w in words:
        assert w in str(e.value), str(e.value)


# -- DeepLab v1 specifics -----------------------------------------------------------------------
DL1 = '''name: "${NET_ID}"
layers { name: "data" type: IMAGE_SEG_DATA top: "data" top: "label" top: "data_dim"
  image_data_param { root_folder: "${DATA_ROOT}" source: "${EXP}/list/train_aug.txt"
    label_type: PIXEL batch_size: 30 shuffle: true }
  transform_param { mean_value: 104.008 mean_value: 116.669 mean_value: 122.675
    crop_size: 321 mirror: true }
  include: { phase: TRAIN } }
layers { name: "fc6" type: CONVOLUTION bottom: "pool5a" top: "fc6" strict_dim: false
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  param: "fc6_w" param: "fc6_b" blob_share_mode: PERMISSIVE
  convolution_param { num_output: 1024 pad: 12 kernel_size: 3 hole: 12 } }
layers { name: "fc7" type: CONVOLUTION bottom: "fc6" top: "fc7"
  convolution_param { num_output: 8 kernel_size: 3 pad_h: 2 pad_w: 4 hole_h: 2 hole_w: 4 } }
layers { name: "label_shrink" type: INTERP bottom: "label" top: "label_shrink"
  interp_param { shrink_factor: 8 pad_beg: 0 pad_end: 0 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "fc8" bottom: "label_shrink"
  softmaxloss_param { ignore_label: 255 ignore_label: 0 weight_source: "w.txt" }
  include: { phase: TRAIN } }
layers { name: "accuracy" type: SEG_ACCURACY bottom: "fc8" bottom: "label_shrink" top: "acc"
  seg_accuracy_param { ignore_label: 255 } }
layers { name: "crf" type: DENSE_CRF bottom: "fc8_interp" bottom: "data_dim" bottom: "data"
  top: "crf" dense_crf_param { max_iter: 10 pos_w: 3 pos_xy_std: 3 bi_w: 4 bi_xy_std: 121
  bi_rgb_std: 5 } }
layers { name: "crop" type: PADDING bottom: "a" top: "b" padding_param { pad_beg: -7 pad_end: -8 } }
layers { name: "w" type: MAT_WRITE bottom: "b" mat_write_param { prefix: "out/" source: "ids" } }
'''
DEFS = {"NET_ID": "largefov", "DATA_ROOT": "/data/VOC", "EXP": "voc12"}


def test_deeplab_v1_upgrade():
    spec = parse_net(DL1, defines=DEFS)
    assert spec.dialect == "deeplab_v1" and spec.name == "largefov"
    by = {l.name: l for l in spec.layers}
    assert [l.type for l in spec.layers] == ["ImageSegData", "Convolution", "Convolution",
                                             "Interp", "SoftmaxWithLoss", "SegAccuracy",
                                             "DenseCRF", "Padding", "MatWrite"]
    data = by["data"].message
    assert data["image_data_param"]["label_type"] == "PIXEL"
    assert data["image_data_param"]["source"] == "voc12/list/train_aug.txt"
    assert data["transform_param"]["mean_value"] == [104.008, 116.669, 122.675]
    fc6 = by["fc6"]
    assert fc6.strict_dim is False and fc6.message["strict_dim"] is False
    assert by["fc7"].strict_dim is True
    assert [(p.name, p.lr_mult, p.decay_mult, p.share_mode) for p in fc6.param] == \
        [("fc6_w", 1, 1, "PERMISSIVE"), ("fc6_b", 2, 0, "STRICT")]
    assert fc6.message["convolution_param"].to_dict() == \
        {"num_output": 1024, "pad": [12], "kernel_size": [3], "dilation": [12]}
    fc7 = by["fc7"].message["convolution_param"]
    assert fc7["dilation"] == [2, 4] and (fc7["pad_h"], fc7["pad_w"]) == (2, 4)
    assert not fc7.has("hole_h")
    loss = by["loss"].message["softmaxloss_param"]
    assert loss["ignore_label"] == [255, 0] and loss["weight_source"] == "w.txt"
    assert by["crf"].message["dense_crf_param"]["bi_xy_std"] == [121.0]
    assert by["crop"].message["padding_param"].to_dict() == {"pad_beg": -7, "pad_end": -8}
    assert by["w"].message["mat_write_param"]["prefix"] == "out/"


def test_deeplab_layers_in_v2_syntax_match_the_upgrade():
    dl = parse_net(DL1, defines=DEFS)
    again = parse_net(net_to_text(dl))
    assert again.dialect == "v2"
    same_layers(dl, again)
    assert [l.strict_dim for l in again.layers] == [l.strict_dim for l in dl.layers]


def test_input_fields_become_an_input_layer():
    spec = parse_net('input: "data"\ninput: "im_info"\ninput_dim: 1\ninput_dim: 3\ninput_dim: '
                     '12\ninput_dim: 12\ninput_dim: 1\ninput_dim: 1\ninput_dim: 1\ninput_dim: 3\n'
                     'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }')
    first = spec.layers[0]
    assert (first.name, first.type, first.top) == ("input", "Input", ["data", "im_info"])
    assert [s["dim"] for s in first.message["input_param"]["shape"]] == \
        [[1, 3, 12, 12], [1, 1, 1, 3]]
    assert first.where == "<string>:1:1" and spec.layers[1].name == "r"
    shaped = parse_net('input: "data" input_shape { dim: 2 dim: 5 }')
    assert shaped.layers[0].message["input_param"]["shape"][0]["dim"] == [2, 5]


def test_legacy_phase_and_upgrade_of_decoded_messages():
    spec = parse_net('layer { name: "d" type: "Data" phase: TRAIN }')
    assert spec.layers[0].phase == "TRAIN"
    # A NetParameter decoded without the text path (e.g. from a caffemodel) upgrades the same.
    msg = parse(DL1, "NetParameter", "deeplab_v1", defines=DEFS)
    same_layers(upgrade_net(msg), parse_net(DL1, defines=DEFS))
    assert upgrade_net(msg).dialect == "deeplab_v1"
    assert upgrade_net(parse(V1 % "", "NetParameter", "bvlc")).dialect == "v1"


# -- real files ---------------------------------------------------------------------------------
def fixture(*parts):
    path = os.path.join(FIXTURES, *parts)
    if not os.path.exists(path):
        pytest.skip("shared fixtures absent")
    return path


@pytest.mark.parametrize("name", ["v1/lenet.prototxt", "v1/lenet_train_test.prototxt",
                                  "v1/cifar10_quick.prototxt",
                                  "v1/cifar10_quick_train_test.prototxt", "v2/lenet.prototxt"])
def test_fixture_nets_parse(name):
    spec = parse_net(fixture(name))
    assert spec.dialect == ("v2" if name.startswith("v2") else "v1")
    assert all(l.type and l.where for l in spec.layers)
    again = parse_net(net_to_text(spec))
    same_layers(spec, again)


def test_fixture_lenet_v1_equals_v2():
    v1, v2 = parse_net(fixture("v1", "lenet.prototxt")), parse_net(fixture("v2", "lenet.prototxt"))
    assert [l.type for l in v1.layers] == ["Input", "Convolution", "Pooling", "Convolution",
                                           "Pooling", "InnerProduct", "ReLU", "InnerProduct",
                                           "Softmax"]
    # Caffe names the upgraded input layer "input"; the V2 file named its Input layer "data".
    v1.layers[0].name = v1.layers[0].message["name"] = "data"
    same_layers(v1, v2)


def test_fixture_cifar_details():
    spec = parse_net(fixture("v1", "cifar10_quick_train_test.prototxt"))
    data = [l for l in spec.layers if l.type == "Data"]
    assert [d.include[0]["phase"] for d in data] == ["TRAIN", "TEST"]
    pools = [l.message["pooling_param"]["pool"] for l in spec.layers if l.type == "Pooling"]
    assert pools == ["MAX", "AVE", "AVE"]
    assert len(glob.glob(os.path.join(FIXTURES, "*", "*.prototxt"))) >= 5
    assert to_text(spec.layers[0].message, "normalized").startswith('name: "cifar"')


def test_files_by_path(tmp_path):
    f = tmp_path / "train.prototxt"
    f.write_text(DL1)
    assert parse_file(f, defines=DEFS)["layers"][1]["convolution_param"]["hole"] == 12
    spec = parse_net(f, defines=DEFS)                 # os.PathLike
    assert spec.dialect == "deeplab_v1" and spec.path == str(f)
    assert spec.layers[1].where == f"{f}:8:1"
    assert parse_net(str(f), defines=DEFS).layers[1].message == spec.layers[1].message
    with pytest.raises(PrototxtError) as e:
        parse_net(str(f))                              # placeholders left unfilled
    assert (e.value.path, e.value.line, e.value.column) == (str(f), 1, 8)


def test_deeplab_v1_text_round_trip():
    m = parse(DL1, "NetParameter", "deeplab_v1", defines=DEFS)
    text = to_text(m, "deeplab_v1")
    assert "hole: 12" in text and "type: IMAGE_SEG_DATA" in text
    assert parse(text, "NetParameter", "deeplab_v1") == m
    with pytest.raises(PrototxtError):      # DeepLab's fields do not exist in BVLC's V1 table
        parse(text, "NetParameter", "bvlc")
