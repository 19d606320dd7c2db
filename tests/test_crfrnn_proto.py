"""CRF-RNN's multi_stage_meanfield_param at the numbers of its own caffe.proto: bytes built here
from the documented numbers decode with our codec, ours encode to the same bytes, pycaffe's
caffe_pb2 (real protobuf) agrees, and a CRF-RNN V2 caffemodel keeps its parameters and blobs."""
import struct

import numpy as np
import pytest

from deeplab_caffe.io.caffemodel import decode_net, write_caffemodel, read_caffemodel
from deeplab_caffe.proto import get_schema, parse
from deeplab_caffe.proto.wire import decode
from deeplab_caffe.proto.wire_encode import encode

BVLC = get_schema("bvlc")

# torrvision/crfasrnn caffe-crfrnn, src/caffe/proto/caffe.proto (the V2 port mtourne/caffe its
# .gitmodules names; the 2015 V1 release has the same message):
#   LayerParameter:  optional MultiStageMeanfieldParameter multi_stage_meanfield_param = 44;
#   MultiStageMeanfieldParameter: compatibility_mode = 1 (enum Mode { POTTS = 0; }),
#   threshold = 2, theta_alpha = 3, theta_beta = 4, theta_gamma = 5 (float, default 10),
#   num_iterations = 6 (uint32, default 1), spatial_filter_weight = 7, bilateral_filter_weight = 8
#   (float, default 1), forced_spatial_filter_weight = 9, forced_bilateral_filter_weight = 10.
VARINT, I32, LEN = 0, 5, 2


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    return bytes(out + bytes([v]))


def key(number, wire_type):
    return varint((number << 3) | wire_type)


def f32(number, value):
    return key(number, I32) + struct.pack("<f", value)


def length_delimited(number, payload):
    return key(number, LEN) + varint(len(payload)) + payload


PARAM_BYTES = (key(1, VARINT) + b"\x00" + f32(2, 2.0) + f32(3, 160.0) + f32(4, 3.0) +
               f32(5, 3.0) + key(6, VARINT) + b"\x0a" + f32(7, 3.0) + f32(8, 5.0))
HEAD_BYTES = length_delimited(1, b"inference1") + length_delimited(2, b"MultiStageMeanfield")
PARAM_FIELD = b"\xe2\x02" + bytes([len(PARAM_BYTES)]) + PARAM_BYTES
LAYER_BYTES = HEAD_BYTES + PARAM_FIELD
CRFRNN_TEXT = """name: "inference1" type: "MultiStageMeanfield"
multi_stage_meanfield_param { num_iterations: 10 compatibility_mode: POTTS threshold: 2
  theta_alpha: 160 theta_beta: 3 theta_gamma: 3 spatial_filter_weight: 3
  bilateral_filter_weight: 5 }"""
EXPECTED = {"compatibility_mode": "POTTS", "threshold": 2.0, "theta_alpha": 160.0,
            "theta_beta": 3.0, "theta_gamma": 3.0, "num_iterations": 10,
            "spatial_filter_weight": 3.0, "bilateral_filter_weight": 5.0}


def test_field_44_key_is_what_the_hand_bytes_use():
    assert key(44, LEN) == b"\xe2\x02"


def test_crfrnn_bytes_decode_with_our_codec():
    layer = decode(LAYER_BYTES, BVLC, "LayerParameter")
    assert layer["name"] == "inference1" and layer["type"] == "MultiStageMeanfield"
    assert layer["multi_stage_meanfield_param"].to_dict() == EXPECTED


def test_our_encoder_writes_crfrnn_bytes():
    for schema in ("bvlc", "normalized"):
        msg = parse(CRFRNN_TEXT, "LayerParameter", schema)
        assert encode(msg, get_schema(schema), "LayerParameter") == LAYER_BYTES


def test_caffe_pb2_agrees():
    pytest.importorskip("google.protobuf", reason="pycaffe needs the protobuf package")
    from google.protobuf import text_format
    import deeplab_caffe.pycaffe as caffe
    msg = caffe.caffe_pb2.LayerParameter()
    text_format.Merge(CRFRNN_TEXT, msg)
    assert msg.SerializeToString() == LAYER_BYTES
    back = caffe.caffe_pb2.LayerParameter.FromString(LAYER_BYTES)
    assert back.multi_stage_meanfield_param.theta_alpha == 160.0
    fresh = caffe.caffe_pb2.MultiStageMeanfieldParameter()
    assert (fresh.theta_alpha, fresh.theta_beta, fresh.theta_gamma, fresh.num_iterations,
            fresh.spatial_filter_weight) == (10.0, 10.0, 10.0, 1, 1.0)


def _blob(values, L):
    data = np.asarray(values, np.float32).tobytes()
    shape = length_delimited(1, bytes([1, 1, L, L]))     # BlobShape.dim: packed int64
    return length_delimited(7, length_delimited(5, data) + length_delimited(7, shape))


def test_a_crfrnn_v2_caffemodel_keeps_param_and_blobs(tmp_path):
    L = 2
    blobs = [np.diag([3.0, 3.0]), np.diag([5.0, 5.0]), -np.eye(L)]
    # fields in number order, as protobuf writes them: name 1, type 2, blobs 7, the param 44
    layer = HEAD_BYTES + b"".join(_blob(b.ravel(), L) for b in blobs) + PARAM_FIELD
    net_bytes = length_delimited(1, b"crfrnn") + length_delimited(100, layer)
    model = decode_net(net_bytes)
    assert (model.format, model.schema, model.unknown_count) == ("v2", "bvlc", 0)
    got = model.layer("inference1")
    assert got.message["multi_stage_meanfield_param"].to_dict() == EXPECTED
    for b, want in zip(got.blobs, blobs):
        assert b.shape == (1, 1, L, L) and np.array_equal(b[0, 0], want)
    path = tmp_path / "crfrnn.caffemodel"
    write_caffemodel(path, model, fsync=False)
    assert read_caffemodel(path).layer("inference1").message.to_dict() == got.message.to_dict()
    assert path.read_bytes() == net_bytes
