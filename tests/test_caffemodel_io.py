"""read/write .caffemodel, .solverstate and .pt files: real Caffe files (../shared/fixtures/caffe,
skipped when absent), synthetic nets, corrupt input.  The DeepLab v1 dialect is tested in
test_caffemodel_dialects.py, Google's protobuf as an oracle in test_caffemodel_oracle.py.

The golden checksums below were computed once with Google's protobuf runtime (7.36) and a
hand-built minimal caffe.proto descriptor (NetParameter/V1LayerParameter/LayerParameter/BlobProto
names, types, blobs only): an independent decoder, not ours.  Per blob: (shape as stored,
element count, sum, sum of squares), sums in float64.
"""
import os
import random

import numpy as np
import pytest

from deeplab_caffe.errors import CaffeError, WireError
from deeplab_caffe.io import (decode_net, read_caffemodel, read_solverstate, read_weights,
                              save_pt, write_caffemodel, write_solverstate, write_weights)
from deeplab_caffe.io.blobs import shape_equals

from caffemodel_util import FIX, dl1_bytes, needs_fixtures


LENET_V1 = [
    ("mnist", "Data", []),
    ("conv1", "Convolution", [((20, 1, 5, 5), 500, 15.52476902725175, 25.36421157238403),
                              ((1, 1, 1, 20), 20, -1.2605945011600852, 0.3721296699037715)]),
    ("pool1", "Pooling", []),
    ("conv2", "Convolution", [((50, 20, 5, 5), 25000, -104.99083154458185, 43.24387218304173),
                              ((1, 1, 1, 50), 50, -1.6728450763621368, 0.1078958019110692)]),
    ("pool2", "Pooling", []),
    ("ip1", "InnerProduct", [((1, 1, 500, 800), 400000, 80.65752248424312, 33.632543940841785),
                             ((1, 1, 1, 500), 500, 0.5586481879495295, 0.009471713397654331)]),
    ("relu1", "ReLU", []),
    ("ip2", "InnerProduct", [((1, 1, 10, 500), 5000, 0.20475612427912893, 21.660975023302868),
                             ((1, 1, 1, 10), 10, -9.843148291110992e-06, 0.019589557279273414)]),
    ("loss", "SoftmaxWithLoss", []),
]
CIFAR_V1 = [
    ("cifar", "Data", []),
    ("conv1", "Convolution", [((32, 3, 5, 5), 2400, -0.07881549348894623, 4.027946415519905),
                              ((1, 1, 1, 32), 32, -0.23324793568463065, 0.003973135965955429)]),
    ("pool1", "Pooling", []), ("relu1", "ReLU", []),
    ("conv2", "Convolution", [((32, 32, 5, 5), 25600, -27.468803481496764, 8.042521360861642),
                              ((1, 1, 1, 32), 32, 0.10396149470034288, 0.005824964401792496)]),
    ("relu2", "ReLU", []), ("pool2", "Pooling", []),
    ("conv3", "Convolution", [((64, 32, 5, 5), 51200, -56.066183126098394, 12.452851510103134),
                              ((1, 1, 1, 64), 64, 1.127903845947003, 0.17693281099947755)]),
    ("relu3", "ReLU", []), ("pool3", "Pooling", []),
    ("ip1", "InnerProduct", [((1, 1, 64, 1024), 65536, -10.002940404584706, 474.5711991352676),
                             ((1, 1, 1, 64), 64, 0.5826007944706362, 0.1294468264042745)]),
    ("ip2", "InnerProduct", [((1, 1, 10, 64), 640, 1.835066672443645, 4.912192338981928),
                             ((1, 1, 1, 10), 10, 4.805624485015869e-07, 0.22301655064124276)]),
    ("loss", "SoftmaxWithLoss", []),
]
LENET_V2 = [
    ("mnist", "Data", []),
    ("conv1", "Convolution", [((20, 1, 5, 5), 500, 1.5325127305404749, 25.192009797306433),
                              ((20,), 20, -0.09326184121891856, 0.5037007558392966)]),
    ("pool1", "Pooling", []),
    ("conv2", "Convolution", [((50, 20, 5, 5), 25000, -96.88384058388942, 43.689433410499355),
                              ((50,), 50, -2.436562866612803, 0.19119415409822782)]),
    ("pool2", "Pooling", []),
    ("ip1", "InnerProduct", [((500, 800), 400000, -29.47250872076637, 263.6041077407995),
                             ((500,), 500, 0.16935241815917834, 0.009464609155010389)]),
    ("relu1", "ReLU", []),
    ("ip2", "InnerProduct", [((10, 500), 5000, -0.197706449758698, 25.578893591698346),
                             ((10,), 10, -1.0430347174406052e-05, 0.0068617254492371925)]),
    ("loss", "SoftmaxWithLoss", []),
]
# Caffe's shapes (legacy dims aligned from the end), from the layer types.
CAFFE_SHAPES = {("lenet", "conv1"): [(20, 1, 5, 5), (20,)], ("lenet", "ip1"): [(500, 800), (500,)],
                ("cifar", "ip1"): [(64, 1024), (64,)], ("cifar", "conv3"): [(64, 32, 5, 5), (64,)]}
FILES = {"v1/lenet_iter_10000.caffemodel": ("LeNet", "v1", LENET_V1),
         "v1/cifar10_quick_iter_5000.caffemodel": ("CIFAR10_quick", "v1", CIFAR_V1),
         "v2/lenet_iter_10000.caffemodel": ("LeNet", "v2", LENET_V2)}


def check_golden(blob, disk, golden):
    shape, count, s, ss = golden
    assert disk == shape and blob.size == count and blob.dtype == np.float32
    x = blob.astype(np.float64).ravel()
    assert x.sum() == pytest.approx(s, rel=1e-9, abs=1e-12)
    assert (x * x).sum() == pytest.approx(ss, rel=1e-9)


@needs_fixtures
@pytest.mark.parametrize("rel", sorted(FILES))
def test_fixture_golden(rel):
    name, fmt, table = FILES[rel]
    m = read_caffemodel(os.path.join(FIX, rel))
    assert (m.name, m.format, m.schema) == (name, fmt, "bvlc")
    assert ("no DeepLab-only" in m.schema_reason) == (fmt == "v1")
    assert m.unknown_count == 0
    assert [(l.name, l.type) for l in m.layers] == [(n, t) for n, t, _ in table]
    for layer, (_, _, blobs) in zip(m.layers, table):
        assert len(layer.blobs) == len(blobs)
        for i, golden in enumerate(blobs):
            check_golden(layer.blobs[i], layer.disk_shapes[i], golden)
            assert layer.legacy[i] == (fmt == "v1")
            assert layer.shape_equals(i, layer.blobs[i].shape)
    key = "cifar" if "cifar" in rel else "lenet"
    for (k, lname), shapes in CAFFE_SHAPES.items():
        if k == key:
            assert [b.shape for b in m.layer(lname).blobs] == shapes
    conv1 = m.layer("conv1").message["convolution_param"]
    assert conv1["num_output"] in (20, 32) and conv1.get("kernel_size") in (5, [5])
    if fmt == "v1":
        assert m.layer("conv1").message["blobs_lr"] == [1.0, 2.0]   # unpacked floats


@needs_fixtures
@pytest.mark.parametrize("rel", sorted(FILES))
def test_rewrite_is_byte_identical(rel, tmp_path):
    """Our encoder reproduces a real Caffe file exactly from its decoded messages."""
    src = os.path.join(FIX, rel)
    m = read_caffemodel(src)
    out = tmp_path / "x.caffemodel"
    write_caffemodel(out, m, format=m.format, schema=m.schema)
    assert out.read_bytes() == open(src, "rb").read()
    assert [p.name for p in tmp_path.iterdir()] == ["x.caffemodel"]   # no temporary left


@needs_fixtures
@pytest.mark.parametrize("rel", sorted(FILES))
def test_v1_v2_round_trip(rel, tmp_path):
    m = read_caffemodel(os.path.join(FIX, rel))
    for fmt in ("v2", "v1"):
        out = tmp_path / f"{fmt}.caffemodel"
        write_caffemodel(out, m, format=fmt)
        back = read_caffemodel(out)
        assert back.format == fmt and back.name == m.name
        assert [(l.name, l.type) for l in back.layers] == [(l.name, l.type) for l in m.layers]
        for a, b in zip(m.layers, back.layers):
            assert [x.shape for x in a.blobs] == [x.shape for x in b.blobs]
            assert all(np.array_equal(x, y) for x, y in zip(a.blobs, b.blobs))
        ip1 = back.layer("ip1").message
        if fmt == "v2":   # V1 blobs_lr became ParamSpec lr_mult (Caffe's upgrade rule)
            assert [p.get("lr_mult") for p in ip1["param"]] == [1.0, 2.0]
        else:
            assert ip1["blobs_lr"] == [1.0, 2.0]
        # Writing what we read again gives the same bytes.
        out2 = tmp_path / f"{fmt}2.caffemodel"
        write_caffemodel(out2, back, format=fmt)
        assert out2.read_bytes() == out.read_bytes()


@needs_fixtures
@pytest.mark.parametrize("rel,n_iter,net,golden", [
    ("v1/lenet_iter_10000.solverstate", 10000, "examples/mnist/lenet_iter_10000.caffemodel",
     {0: ((20, 1, 5, 5), 500, 0.004849519967947913, 5.242379347029257e-07),
      5: ((1, 1, 1, 500), 500, -0.00010995426936410979, 7.430319005671585e-08),
      4: ((1, 1, 500, 800), 400000, -0.03944670889408423, 4.001952368380187e-05)}),
    ("v1/cifar10_quick_iter_5000.solverstate", 5000,
     "examples/cifar10/cifar10_quick_lr1_iter_5000.caffemodel",
     {0: ((32, 3, 5, 5), 2400, -0.008833378800504832, 1.1436979786185884e-06),
      5: ((1, 1, 1, 64), 64, 6.0503091852126545e-06, 1.9618336023225982e-10),
      6: ((1, 1, 64, 1024), 65536, -0.0014906547464755672, 1.564444953517031e-07)}),
])
def test_solverstate_fixtures(rel, n_iter, net, golden, tmp_path):
    s = read_solverstate(os.path.join(FIX, rel))
    assert (s.iter, s.learned_net, s.current_step) == (n_iter, net, 0)
    n = len(s.history)
    assert n == (8 if "lenet" in rel else 10)
    for i, g in golden.items():
        check_golden(s.history[i], s.disk_shapes[i], g)
    # history i matches learnable param i of the caffemodel, by Caffe's ShapeEquals
    m = read_caffemodel(os.path.join(FIX, rel.replace(".solverstate", ".caffemodel")))
    params = [b for l in m.layers for b in l.blobs]
    assert [s.shape_equals(i, p.shape) for i, p in enumerate(params)] == [True] * n
    for fmt in ("v1", "v2"):
        out = tmp_path / f"s_{fmt}.solverstate"
        write_solverstate(out, s.iter, s.learned_net, s.history, 3, format=fmt)
        t = read_solverstate(out)
        assert (t.iter, t.learned_net, t.current_step) == (s.iter, s.learned_net, 3)
        assert all(np.array_equal(a, b) and a.shape == b.shape
                   for a, b in zip(s.history, t.history))
        assert t.legacy == [fmt == "v1"] * n
    write_solverstate(tmp_path / "same.solverstate", s.iter, s.learned_net, s.history,
                      format="v1")
    assert (tmp_path / "same.solverstate").read_bytes() == open(os.path.join(FIX, rel),
                                                                "rb").read()



def test_write_inputs_and_errors(tmp_path):
    import torch
    w = torch.arange(24, dtype=torch.float64).reshape(2, 3, 2, 2)
    out = tmp_path / "n.caffemodel"
    write_caffemodel(out, [("conv", "Convolution", [w, torch.ones(2)]),
                           ("relu", "ReLU", [])], name="tiny")
    m = read_caffemodel(out)
    assert m.name == "tiny" and m.layer("conv").blobs[0].dtype == np.float32
    assert np.array_equal(m.layer("conv").blobs[0], w.numpy())
    write_caffemodel(out, {"fc": [np.ones((3, 4))]}, format="v1")
    m = read_caffemodel(out)
    assert m.layers[0].type == "" and m.layers[0].disk_shapes == [(1, 1, 3, 4)]
    assert m.layers[0].blobs[0].shape == (3, 4)   # leading 1s dropped (type unknown)
    before = out.read_bytes()
    with pytest.raises(CaffeError, match="'PReLU' has no BVLC V1 enum value"):
        write_caffemodel(out, [("p", "PReLU", [np.ones(3)])], format="v1")
    with pytest.raises(CaffeError, match="at most 4 axes"):
        write_caffemodel(out, [("c", "Convolution", [np.ones((1, 1, 1, 1, 2))])], format="v1")
    with pytest.raises(CaffeError, match="format must be"):
        write_caffemodel(out, [], format="v3")
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["n.caffemodel"]


def test_pt_files(tmp_path):
    import torch
    buf, _ = dl1_bytes()
    m = decode_net(buf)
    sd = save_pt(tmp_path / "w.pt", m)
    assert sorted(sd) == ["fc6.0", "fc6.1", "fc7.0"]
    loaded = torch.load(tmp_path / "w.pt", weights_only=True)
    assert torch.equal(loaded["fc6.0"], torch.from_numpy(m.layer("fc6").blobs[0]))
    back = read_weights(tmp_path / "w.pt")
    assert back.format == "pt" and [l.name for l in back.layers] == ["fc6", "fc7"]
    assert np.array_equal(back.layer("fc6").blobs[1], m.layer("fc6").blobs[1])
    torch.save({"x": torch.ones(1)}, tmp_path / "bad.pt")
    with pytest.raises(CaffeError, match="'<layer>.<blob index>'"):
        read_weights(tmp_path / "bad.pt")


def test_write_weights_picks_the_format_by_name(tmp_path):
    m = decode_net(dl1_bytes()[0])
    write_weights(tmp_path / "w.pth", m)
    write_weights(tmp_path / "w.caffemodel", m, format="v1", name="n")
    pt, cm = read_weights(tmp_path / "w.pth"), read_weights(tmp_path / "w.caffemodel")
    assert (pt.format, cm.format, cm.schema, cm.name) == ("pt", "v1", "deeplab_v1", "n")
    for back in (pt, cm):
        assert all(np.array_equal(a, b) for a, b in zip(back.layer("fc6").blobs,
                                                         m.layer("fc6").blobs))
    (tmp_path / "w.pth").rename(tmp_path / "renamed.bin")     # read by content, not by name
    assert read_weights(tmp_path / "renamed.bin").format == "pt"


def test_shape_equals_is_caffes():
    assert shape_equals((500, 800), (1, 1, 500, 800), True)
    assert shape_equals((20,), (1, 1, 1, 20), True)
    assert not shape_equals((20,), (1, 1, 20, 1), True)
    assert shape_equals((4, 3, 3, 3), (4, 3, 3, 3), False)
    assert not shape_equals((1, 1, 500, 800), (500, 800), False)
    assert not shape_equals((2, 1, 1, 1, 1), (1, 1, 1, 2), True)


def test_corrupt_files_raise_wire_error(tmp_path):
    buf, _ = dl1_bytes()
    for n in range(0, len(buf), 7):
        try:
            decode_net(buf[:n])
        except WireError:
            pass
        except CaffeError as e:   # a prefix can be a valid, merely ambiguous net
            assert "type 39" in str(e)
    rng = random.Random(5)
    kinds = {}
    for k in range(3000):
        b = bytearray(buf)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256) if rng.random() < 0.7 else b[i] ^ 0x80
        try:
            decode_net(bytes(b), ("deeplab_v1", "auto", "bvlc")[k % 3])
            kinds["ok"] = kinds.get("ok", 0) + 1
        except WireError as e:
            kinds["wire"] = kinds.get("wire", 0) + 1
            assert e.offset is None or 0 <= e.offset <= len(b)
        except CaffeError as e:   # a valid protobuf whose meaning is ambiguous or forbidden
            assert "cannot tell the schema" in str(e) or "both V1" in str(e)
    assert kinds["wire"] > 200 and kinds["ok"] > 200
    p = tmp_path / "t.caffemodel"
    p.write_bytes(buf[:-3])
    with pytest.raises(WireError) as e:
        read_caffemodel(p)
    assert str(e.value).startswith(str(p)) and "byte" in str(e.value)
    p.write_bytes(b"")
    assert read_caffemodel(p).layers == []
    with pytest.raises(CaffeError, match="cannot open"):
        read_caffemodel(tmp_path / "missing.caffemodel")


@needs_fixtures
def test_truncated_fixture():
    data = open(os.path.join(FIX, "v1/lenet_iter_10000.caffemodel"), "rb").read()
    rng = random.Random(7)
    for n in sorted(rng.sample(range(1, len(data)), 25)):
        with pytest.raises(WireError):
            decode_net(data[:n], "bvlc")
