"""The DeepLab v1 dialect of .caffemodel files: schema detection, conversion to BVLC V2 and back
(by field name, through the one V1 -> V2 upgrade that prototxt files get too)."""
import numpy as np
import pytest

from deeplab_caffe.errors import CaffeError, PrototxtError
from deeplab_caffe.io import decode_net, read_caffemodel, write_caffemodel
from deeplab_caffe.proto import parse_net, wire
from deeplab_caffe.proto.message import Message
from deeplab_caffe.proto.schema import get_schema

from caffemodel_util import L, dl1_bytes


def test_deeplab_v1_auto_and_forced():
    buf, (w, b, fc) = dl1_bytes()
    m = decode_net(buf)
    assert (m.format, m.schema) == ("v1", "deeplab_v1")
    assert "hole" in m.schema_reason and "IMAGE_SEG_DATA" in m.schema_reason
    assert [l.type for l in m.layers] == ["ImageSegData", "Convolution", "InnerProduct", "Interp",
                                          "SoftmaxWithLoss", "SegAccuracy"]
    fc6 = m.layer("fc6")
    assert fc6.message["convolution_param"]["hole"] == 12 and fc6.message["strict_dim"] is False
    assert [x.shape for x in fc6.blobs] == [(4, 3, 3, 3), (4,)] and m.layer("fc7").blobs[0].shape \
        == (5, 4)
    assert np.array_equal(fc6.blobs[0], w) and np.array_equal(m.layer("fc7").blobs[0], fc)
    assert m.layer("loss").message["softmaxloss_param"]["ignore_label"] == [255, -1]
    # The same bytes read with BVLC's numbering: wrong meanings, which is why auto exists.
    bad = decode_net(buf, "bvlc")
    assert bad.layers[0].type == "Deconvolution" and bad.layer("label_shrink").type == \
        "V1Type41"
    assert bad.layer("fc6").message["convolution_param"]["force_nd_im2col"] is True
    assert bad.unknown_count > 0


def test_detection_rules():
    conv_layer = lambda ctype, **conv: L(  # noqa: E731
        name="c", type=ctype, convolution_param=Message("ConvolutionParameter", conv))
    dl = get_schema("deeplab_v1")
    bv = get_schema("bvlc")

    def net(schema, *layers):
        name = "LayerParameter" if schema is dl else "V1LayerParameter"
        return wire.encode(Message("NetParameter", {"layers": [Message(name, l.fields)
                                                               for l in layers]}), schema)
    assert decode_net(net(dl, conv_layer("CONVOLUTION", hole=2))).schema == "deeplab_v1"
    assert decode_net(net(dl, conv_layer("CONVOLUTION", hole=1))).schema == "bvlc"  # same meaning
    assert decode_net(net(dl, conv_layer("CONVOLUTION", hole_h=2, hole_w=3))).schema == \
        "deeplab_v1"
    assert decode_net(net(bv, conv_layer("CONVOLUTION", dilation=[2]))).schema == "bvlc"
    deconv = decode_net(net(bv, conv_layer("DECONVOLUTION", num_output=3)))
    assert deconv.schema == "bvlc" and deconv.layers[0].type == "Deconvolution"
    loss = L(name="l", type="SOFTMAX_LOSS", loss_param=Message("LossParameter",
                                                               {"ignore_label": -1}))
    assert decode_net(net(bv, loss)).schema == "bvlc"
    seg = decode_net(net(dl, L(name="d", type="IMAGE_SEG_DATA", image_data_param=Message(
        "ImageDataParameter", {"batch_size": 1}))))
    assert seg.schema == "deeplab_v1" and seg.layers[0].type == "ImageSegData"
    # type 39 alone: BVLC reads DECONVOLUTION, DeepLab IMAGE_SEG_DATA; nothing decides.
    with pytest.raises(CaffeError, match="type 39"):
        decode_net(net(dl, L(name="x", type="IMAGE_SEG_DATA")))
    assert decode_net(net(dl, L(name="x", type="IMAGE_SEG_DATA")), "deeplab_v1").layers[0].type \
        == "ImageSegData"
    # Evidence both ways (concatenated messages merge their layers).
    with pytest.raises(CaffeError, match="schema='bvlc' or schema='deeplab_v1'"):
        decode_net(net(dl, L(name="i", type="INTERP")) + net(bv, loss))
    v2 = wire.encode(Message("NetParameter", {"layer": [Message("LayerParameter",
                                                                {"name": "a"})]}), bv)
    assert decode_net(v2).format == "v2"
    with pytest.raises(CaffeError, match="V2 file"):
        decode_net(v2, "deeplab_v1")
    with pytest.raises(CaffeError, match="both V1"):
        decode_net(v2 + net(bv, loss))
    with pytest.raises(CaffeError, match="schema must be"):
        decode_net(v2, "caffe")


def test_deeplab_v1_to_v2_and_back(tmp_path):
    buf, (w, b, fc) = dl1_bytes()
    m = decode_net(buf)
    write_caffemodel(tmp_path / "v2.caffemodel", m, format="v2")
    v2 = read_caffemodel(tmp_path / "v2.caffemodel")
    assert v2.format == "v2" and [l.type for l in v2.layers] == [l.type for l in m.layers]
    msg = v2.layer("fc6").message
    assert msg["convolution_param"]["dilation"] == [12]
    assert msg["convolution_param"]["pad"] == [12]
    assert [(p["lr_mult"], p["decay_mult"]) for p in msg["param"]] == [(1.0, 1.0), (2.0, 0.0)]
    assert not v2.layer("label_shrink").message.has("interp_param")  # BVLC V2 has no such field
    # back to V1: DeepLab's enum is chosen (Interp, ImageSegData exist only there), hole restored
    assert write_caffemodel(tmp_path / "v1.caffemodel", v2, format="v1") == "deeplab_v1"
    v1 = read_caffemodel(tmp_path / "v1.caffemodel")
    assert v1.schema == "deeplab_v1"
    assert v1.layer("fc6").message["convolution_param"]["hole"] == 12
    assert v1.layer("fc6").message["blobs_lr"] == [1.0, 2.0]
    for name, arr in (("fc6", w), ("fc7", fc)):
        assert np.array_equal(v1.layer(name).blobs[0], arr)
    # A DeepLab file written back in its own dialect is identical.
    write_caffemodel(tmp_path / "same.caffemodel", m, format="v1")
    assert (tmp_path / "same.caffemodel").read_bytes() == buf


def test_write_from_net_like_layers(tmp_path):
    """What Net.save passes: layer objects with .name, .type_name, .blobs (torch Parameters)
    and .spec.message (the normalized LayerParameter from upgrade.py)."""
    import torch
    from deeplab_caffe.proto.upgrade import parse_net_text
    spec = parse_net_text("""
        name: "tiny"
        layers { name: "fc6" type: CONVOLUTION bottom: "data" top: "fc6" blobs_lr: 1 blobs_lr: 2
                 strict_dim: false
                 convolution_param { num_output: 2 kernel_size: 3 pad: 12 hole: 12 } }
        layers { name: "shrink" type: INTERP bottom: "label" top: "ls"
                 interp_param { shrink_factor: 8 } }""")

    class FakeLayer:
        def __init__(self, s, blobs):
            self.spec, self.name, self.type_name = s, s.name, s.type
            self.blobs = torch.nn.ParameterList(blobs)
    w = torch.nn.Parameter(torch.randn(2, 3, 3, 3))
    layers = [FakeLayer(spec.layers[0], [w, torch.nn.Parameter(torch.zeros(2))]),
              FakeLayer(spec.layers[1], [])]
    assert write_caffemodel(tmp_path / "n.caffemodel", layers, format="v1", name="tiny") == \
        "deeplab_v1"
    m = read_caffemodel(tmp_path / "n.caffemodel")
    assert m.schema == "deeplab_v1" and [l.type for l in m.layers] == ["Convolution", "Interp"]
    fc6 = m.layer("fc6").message
    assert fc6["convolution_param"].fields == {"num_output": 2, "kernel_size": 3, "pad": 12,
                                               "hole": 12}
    assert fc6["blobs_lr"] == [1.0, 2.0] and fc6["strict_dim"] is False
    assert m.layer("shrink").message["interp_param"]["shrink_factor"] == 8
    assert np.array_equal(m.layer("fc6").blobs[0], w.detach().numpy())
    write_caffemodel(tmp_path / "n2.caffemodel", layers)           # V2: dilation
    v2 = read_caffemodel(tmp_path / "n2.caffemodel").layer("fc6").message
    assert v2["convolution_param"]["dilation"] == [12] and v2["param"][1]["lr_mult"] == 2.0


def _dl1_conv_layer(**conv):
    return L(name="c", type="CONVOLUTION", bottom=["data"], top=["c"],
             convolution_param=Message("ConvolutionParameter", {"num_output": 2,
                                                                "kernel_size": 3, **conv}))


@pytest.mark.parametrize("conv,text,expect", [
    # Where the text and binary upgrades once disagreed: DeepLab's conv layer CHECK-fails on
    # these, so both refuse them now (the binary path used to keep hole_h/hole_w, filling 1).
    ({"hole": 2, "hole_h": 2, "hole_w": 3}, "hole: 2 hole_h: 2 hole_w: 3",
     "give either hole or hole_h and hole_w, not both"),
    ({"hole_h": 2}, "hole_h: 2", "hole_h and hole_w must be given together"),
    ({"hole_w": 3}, "hole_w: 3", "hole_h and hole_w must be given together"),
    # What they agree on gives the same V2 parameters.
    ({"hole_h": 2, "hole_w": 3}, "hole_h: 2 hole_w: 3", [2, 3]),
    ({"hole": 4}, "hole: 4", [4]),
])
def test_one_hole_upgrade_for_text_and_binary(conv, text, expect, tmp_path):
    buf = wire.encode(Message("NetParameter", {"layers": [_dl1_conv_layer(**conv)]}),
                      get_schema("deeplab_v1"))
    m = decode_net(buf, "deeplab_v1")
    assert m.layer("c").message["convolution_param"].fields == {"num_output": 2,
                                                               "kernel_size": 3, **conv}
    prototxt = ('layers { name: "c" type: CONVOLUTION bottom: "data" top: "c"\n'
                f'  convolution_param {{ num_output: 2 kernel_size: 3 {text} }} }}')
    out = tmp_path / "c.caffemodel"
    if isinstance(expect, str):
        with pytest.raises(PrototxtError, match=expect) as text_err:
            parse_net(prototxt)
        assert text_err.value.line == 2
        with pytest.raises(CaffeError, match=f"layer 'c': {expect}"):
            write_caffemodel(out, m, format="v2")
        assert not out.exists()
        return
    text_conv = parse_net(prototxt).layers[0].message["convolution_param"]
    write_caffemodel(out, m, format="v2")
    binary_conv = read_caffemodel(out).layer("c").message["convolution_param"]
    assert text_conv["dilation"] == binary_conv["dilation"] == expect
    assert text_conv.fields == binary_conv.fields
    # and back to DeepLab v1: one dilation value is hole, two are hole_h / hole_w
    write_caffemodel(out, read_caffemodel(out), format="v1", schema="deeplab_v1")
    back = read_caffemodel(out, "deeplab_v1").layer("c").message["convolution_param"]
    assert {k: v for k, v in back.fields.items() if k.startswith("hole")} == conv
