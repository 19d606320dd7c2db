"""The weak/semi-supervised layers as files write them: DeepLab v1 text (enum types, the fork's
parameter messages), V2 text, and the fork's binary field numbers (its caffe.proto)."""
import torch

from deeplab_caffe.net import Net
from deeplab_caffe.proto import parse_net, wire
from deeplab_caffe.proto.message import Message
from deeplab_caffe.proto.schema import get_schema
from layer_util import expect_net_error

# A semi-supervised-style net in DeepLab v1 syntax: every new type once, sub.sed-style
# placeholders for the biases (as the authors' Semi-Bbox configs use ${BG_BIAS} / ${FG_BIAS}).
DL1_NET = """name: "weak"
input: "score" input_dim: 2 input_dim: 4 input_dim: 5 input_dim: 6
input: "label" input_dim: 2 input_dim: 1 input_dim: 5 input_dim: 6
layers { name: "weak" type: UNIQUE_LABEL bottom: "label" top: "weak"
  unique_label_param { max_labels: 5 ignore_label: 255 force_label: 0 } }
layers { name: "biased" type: BIAS_CHANNEL bottom: "score" bottom: "weak" top: "biased"
  bias_channel_param { bg_bias: ${BG_BIAS} fg_bias: ${FG_BIAS} ignore_label: 255 } }
layers { name: "adapted" type: ADAPTIVE_BIAS_CHANNEL bottom: "biased" bottom: "weak"
  top: "adapted" adaptive_bias_channel_param { num_iter: 2 bg_portion: 0.4 fg_portion: 0.2
  suppress_others: true margin_others: 1e-5 } }
layers { name: "gain" type: GAIN_CHANNEL bottom: "adapted" top: "gain"
  gain_channel_param { num_output_nz: 3 drift: 0.1 stdev: 0 norm_mean: true thresh: 1e-3
  gain_filler { type: "constant" value: 1 } } }
layers { name: "agg" type: CHANNEL_AGGREGATOR bottom: "gain" top: "agg"
  channel_aggregator_param { label_map_file: "${MAP}" } }
layers { name: "estep" type: ARGMAX bottom: "adapted" top: "estep"
  argmax_param { out_max_val: false top_k: 1 } }
layers { name: "censored" type: CENSOR_LABEL bottom: "estep" bottom: "weak" top: "censored"
  censor_label_param { ignore_label: 255 } }
layers { name: "overlay" type: IGNORE_OVERLAY bottom: "label" bottom: "censored"
  top: "overlay" ignore_overlay_param { ignore_label: 255 } }
layers { name: "hist" type: HISTOGRAM bottom: "overlay" top: "hist"
  histogram_param { num_labels: 4 ignore_label: 255 } }
layers { name: "dominant" type: DOMINANT_CHANNEL bottom: "score" top: "dominant"
  dominant_channel_param { top_k: 2 } }
layers { name: "rank" type: ARGMAX bottom: "score" top: "rank" argmax_param { top_k: 4 } }
layers { name: "onehot" type: ONEHOT bottom: "rank" top: "onehot" onehot_param { num_labels: 4 } }
layers { name: "relerr" type: RELATIVE_ERROR bottom: "score" bottom: "gain" top: "relerr" }
"""


def test_every_weak_layer_reads_and_runs_from_deeplab_v1_text(tmp_path):
    (tmp_path / "map.txt").write_text("0\n1 2 3\n")
    defines = {"BG_BIAS": "1", "FG_BIAS": "3", "MAP": str(tmp_path / "map.txt")}
    spec = parse_net(DL1_NET, defines=defines)
    assert spec.dialect == "deeplab_v1"
    net = Net(spec, phase="TRAIN")
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 2, (2, 1, 5, 6), generator=g).float() * 3   # labels 0 and 3
    label[0, 0, 0, 0] = 255
    out = net.forward(score=torch.randn(2, 4, 5, 6, generator=g), label=label)
    blobs = net.blobs
    assert blobs["weak"][:, :3, 0, 0].tolist() == [[0, 3, -1], [0, 3, -1]]
    assert blobs["estep"].shape == (2, 1, 5, 6)            # the fork's per-pixel ArgMax
    assert set(blobs["estep"].unique().tolist()) <= {0.0, 3.0}
    assert blobs["rank"].shape == (2, 4, 5, 6)
    assert torch.equal(blobs["onehot"], torch.ones(2, 4, 5, 6))    # every class is ranked
    assert blobs["agg"].shape == (2, 2, 5, 6) and blobs["dominant"].shape == (2, 2, 1, 1)
    assert float(blobs["hist"][0].sum()) == 2 * 30 - 1 and float(blobs["hist"][1].sum()) == 0
    assert blobs["overlay"][0, 0, 0, 0] == 255
    assert set(out) == {"agg", "dominant", "hist", "onehot", "relerr"}


def test_a_v2_file_names_the_types_and_gets_bvlc_argmax():
    net = Net("""name: "v2"
input: "s" input_shape { dim: 1 dim: 3 dim: 2 dim: 2 }
layer { name: "a" type: "ArgMax" bottom: "s" top: "a" argmax_param { top_k: 2 } }
layer { name: "o" type: "OneHot" bottom: "s" top: "o" onehot_param { num_labels: 3 } }
""")
    assert net.blob_shapes["a"] == (1, 1, 2, 1) and not net.layer("a").fork
    expect_net_error(lambda: Net("""name: "x"
input: "s" input_shape { dim: 1 dim: 3 dim: 2 dim: 2 }
layer { name: "u" type: "UniqueLabel" bottom: "s" top: "u" }"""), "unique_label_param",
                     "max_labels", layer="u")


def test_the_fork_binary_field_numbers():
    dl1 = get_schema("deeplab_v1")
    expected = {"dominant_channel_param": 49, "bias_channel_param": 50,
                "unique_label_param": 51, "censor_label_param": 52,
                "adaptive_bias_channel_param": 53, "channel_aggregator_param": 54,
                "ignore_overlay_param": 55, "histogram_param": 56, "gain_channel_param": 58,
                "onehot_param": 59}
    fields = dl1.messages["LayerParameter"].by_name
    assert {k: fields[k].number for k in expected} == expected
    assert dl1.enums["LayerParameter.LayerType"]["ONEHOT"] == 56
    layer = Message("LayerParameter", {"name": "g", "type": "GAIN_CHANNEL", "gain_channel_param":
                    Message("GainChannelParameter", {"num_output_nz": 3, "thresh": 0.5})})
    buf = wire.encode(layer, dl1)
    assert b"\xd2\x03" in buf                   # field 58, length-delimited: key 466 as varint
    back = wire.decode(buf, dl1, "LayerParameter")
    assert back["type"] == "GAIN_CHANNEL"
    assert back["gain_channel_param"]["num_output_nz"] == 3
