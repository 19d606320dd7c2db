"""deeplab_caffe.pycaffe beyond BVLC's suite: caffe_pb2 against our schema and codec on our own
files, blob memory semantics, and FCN-style inference and net surgery on the DeepLab zoo through
``import caffe`` (the shim)."""
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

pytest.importorskip("google.protobuf", reason="pycaffe needs the protobuf package")

from google.protobuf import text_format  # noqa: E402

import deeplab_caffe.pycaffe as caffe  # noqa: E402
from deeplab_caffe import Net as CoreNet  # noqa: E402
from deeplab_caffe.io.blobs import blob_from_proto  # noqa: E402
from deeplab_caffe.proto import get_schema, net_to_text, parse, parse_net  # noqa: E402
from deeplab_caffe.proto.wire import decode  # noqa: E402
from deeplab_caffe.proto.wire_encode import encode  # noqa: E402
from deeplab_caffe.pycaffe.proto import normalized_pb2  # noqa: E402

from conftest import requires_cuda  # noqa: E402
from zoo_util import ZOO, narrowed  # noqa: E402

BVLC = get_schema("bvlc")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = sorted(d for d in os.listdir(ZOO) if d.startswith("DeepLab"))
DEFINES = {"EXP": "voc12", "NET_ID": "net", "NUM_LABELS": "21", "DATA_ROOT": "/data",
           "TEST_SET": "val", "TRAIN_SET": "train_aug", "FEATURE_DIR": "/tmp/features"}


def _fill(text):
    return re.sub(r"\$\{(\w+)\}", lambda m: DEFINES.get(m.group(1), m.group(1)), text)


# -- caffe_pb2 against our schema tables and codec --------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_solver_files_round_trip_through_caffe_pb2(variant):
    text = _fill(open(os.path.join(ZOO, variant, "solver.prototxt")).read())
    msg = caffe.caffe_pb2.SolverParameter()
    text_format.Merge(text, msg)
    ours = parse(text, "SolverParameter", "bvlc")
    assert msg.SerializeToString() == encode(ours, BVLC, "SolverParameter")
    back = decode(msg.SerializeToString(), BVLC, "SolverParameter")
    assert encode(back, BVLC, "SolverParameter") == msg.SerializeToString()
    again = caffe.caffe_pb2.SolverParameter()
    text_format.Merge(text_format.MessageToString(msg), again)
    assert again == msg


ZOO_NETS = [(v, f) for v in VARIANTS for f in ("train.prototxt", "test.prototxt", "test_crf.prototxt")
            if os.path.exists(os.path.join(ZOO, v, f))]


@pytest.mark.parametrize("variant,fname", ZOO_NETS)
def test_zoo_nets_upgraded_text_merges_and_encodes_like_ours(variant, fname):
    path = os.path.join(ZOO, variant, fname)
    text = net_to_text(parse_net(path, defines=DEFINES))
    msg = normalized_pb2.NetParameter()
    text_format.Merge(text, msg)
    assert len(msg.layer) > 10
    assert msg.SerializeToString() == encode(parse(text, "NetParameter", "normalized"),
                                             get_schema("normalized"), "NetParameter")


def test_default_values_and_enums_come_from_our_tables():
    schema = get_schema("bvlc")
    conv = caffe.caffe_pb2.ConvolutionParameter()
    for f in schema.message("ConvolutionParameter").fields:
        if f.default is not None and not f.repeated and f.type != "enum":
            assert getattr(conv, f.name) == pytest.approx(f.default), f.name
    pool_methods = schema.enums["PoolingParameter.PoolMethod"]
    assert caffe.caffe_pb2.PoolingParameter.AVE == pool_methods["AVE"]
    assert caffe.caffe_pb2.TEST == 1 and caffe.params.Pooling.STOCHASTIC == 2
    layer = caffe.caffe_pb2.LayerParameter()
    assert layer.DESCRIPTOR.fields_by_name["convolution_param"].number == \
        schema.message("LayerParameter").by_name["convolution_param"].number


def test_blobproto_written_by_caffe_io_reads_with_our_codec():
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    data = caffe.io.array_to_blobproto(arr).SerializeToString()
    ours, disk_shape, legacy = blob_from_proto(decode(data, BVLC, "BlobProto"))
    np.testing.assert_array_equal(ours, arr)
    assert disk_shape == (2, 3, 4) and not legacy
    vec = caffe.io.arraylist_to_blobprotovector_str([arr, arr[0]])
    back = caffe.io.blobprotovector_str_to_arraylist(vec)
    np.testing.assert_array_equal(back[1], arr[0])


def test_datum_round_trip():
    img = (np.arange(2 * 3 * 4) % 251).astype(np.uint8).reshape(2, 3, 4)
    datum = caffe.caffe_pb2.Datum()
    datum.ParseFromString(caffe.io.array_to_datum(img, label=7).SerializeToString())
    assert datum.label == 7
    np.testing.assert_array_equal(caffe.io.datum_to_array(datum), img)


# -- blob memory ------------------------------------------------------------------------------
NET = """name: "t" force_backward: true
input: "data" input_shape { dim: 2 dim: 3 dim: 5 dim: 5 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: AVE kernel_size: 3 } }
"""


@pytest.fixture
def net(tmp_path):
    p = tmp_path / "net.prototxt"
    p.write_text(NET)
    return caffe.Net(str(p), caffe.TEST)


def _reference(net, x):
    w, b = (torch.from_numpy(p.data.copy()) for p in net.params["conv"])
    return torch.nn.functional.avg_pool2d(
        torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), w, b)), 3, 1)


def test_written_data_feeds_the_next_forward(net):
    x = np.random.RandomState(0).randn(2, 3, 5, 5).astype(np.float32)
    net.blobs["data"].data[...] = x
    out = net.forward()
    np.testing.assert_allclose(out["pool"], _reference(net, x).numpy(), rtol=1e-5, atol=1e-6)
    assert out["pool"] is not None and np.shares_memory(out["pool"], net.blobs["pool"].data)


def test_net_surgery_through_params_feeds_forward(net):
    x = np.random.RandomState(1).randn(2, 3, 5, 5).astype(np.float32)
    net.params["conv"][0].data[...] = 0
    net.params["conv"][1].data[...] = [1, -1, 2, 3]
    out = net.forward(data=x)["pool"]
    np.testing.assert_allclose(out[:, :, 0, 0], [[1, 0, 2, 3]] * 2)


def test_backward_from_top_diff_matches_autograd(net):
    x = np.random.RandomState(2).randn(2, 3, 5, 5).astype(np.float32)
    net.forward(data=x)
    g = np.random.RandomState(3).randn(*net.blobs["pool"].shape).astype(np.float32)
    diffs = net.backward(pool=g)
    xt = torch.from_numpy(x).requires_grad_()
    w, b = (torch.from_numpy(p.data.copy()) for p in net.params["conv"])
    y = torch.nn.functional.avg_pool2d(torch.relu(torch.nn.functional.conv2d(xt, w, b)), 3, 1)
    y.backward(torch.from_numpy(g))
    np.testing.assert_allclose(diffs["data"], xt.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_reshape_then_forward_changes_every_blob(net):
    net.blobs["data"].reshape(1, 3, 8, 8)
    net.forward()
    assert net.blobs["conv"].shape == (1, 4, 6, 6) and net.blobs["pool"].shape == (1, 4, 4, 4)
    assert (net.blobs["data"].num, net.blobs["data"].channels) == (1, 3)


def test_bad_phase_and_unknown_input_name_errors(net, tmp_path):
    with pytest.raises(ValueError, match="phase"):
        caffe.Net(str(tmp_path / "x"), 7)
    with pytest.raises(Exception, match="not an input blob"):
        net.forward(label=np.zeros(2))


@requires_cuda
def test_gpu_blob_host_writes_reach_the_device(tmp_path):
    p = tmp_path / "net.prototxt"
    p.write_text(NET)
    caffe.set_mode_gpu()
    try:
        net = caffe.Net(str(p), caffe.TEST)
        x = np.random.RandomState(4).randn(2, 3, 5, 5).astype(np.float32)
        net.blobs["data"].data[...] = x
        net.params["conv"][1].data[...] = 5
        out = net.forward()["pool"]
        np.testing.assert_allclose(out, _reference(net, x).numpy(), rtol=1e-4, atol=1e-4)
        assert net._core.device.type == "cuda"
    finally:
        caffe.set_mode_cpu()


def test_draw_graph_of_a_netspec_net():
    pytest.importorskip("pydot")
    n = caffe.NetSpec()
    n.data = caffe.layers.Input(shape=dict(dim=[1, 3, 8, 8]))
    n.conv = caffe.layers.Convolution(n.data, num_output=2, kernel_size=3)
    n.relu = caffe.layers.ReLU(n.conv, in_place=True)
    from deeplab_caffe.pycaffe import draw
    graph = draw.get_pydot_graph(n.to_proto(), "LR")
    names = {node.get_name() for node in graph.get_nodes()}
    assert {"conv_Convolution", "relu_ReLU", "data_blob", "conv_blob"} <= names
    edges = {(e.get_source(), e.get_destination()) for e in graph.get_edges()}
    assert edges == {("data_Input", "data_blob"), ("data_blob", "conv_Convolution"),
                     ("conv_Convolution", "conv_blob"), ("conv_blob", "relu_ReLU"),
                     ("relu_ReLU", "conv_blob")}
    assert graph.get_node("relu_ReLU")[0].get("fillcolor") == draw.NEURON_LAYER_STYLE["fillcolor"]


# -- the DeepLab zoo through ``import caffe`` -------------------------------------------------
def _deploy_text(variant, size):
    """The narrowed zoo test net as an FCN-style deploy net: an input blob instead of the image
    data layer, no label consumers (MatWrite, Silence)."""
    text = _fill(narrowed(variant, "test.prototxt"))
    blocks = re.split(r"(?m)^(?=layers \{)", text)
    keep = [b for b in blocks[1:] if not re.search(r"type: (IMAGE_SEG_DATA|MAT_WRITE|SILENCE)",
                                                   b)]
    head = f'name: "deploy"\ninput: "data"\ninput_dim: 1 input_dim: 3 input_dim: {size} ' \
           f"input_dim: {size}\n"
    return head + "".join(keep)


SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    import caffe
    model, weights, img, out = sys.argv[1:5]
    img = np.load(img)
    net = caffe.Net(model, weights, caffe.TEST)
    net.blobs['data'].reshape(1, *img.shape)
    net.blobs['data'].data[...] = img
    net.forward()
    score = net.outputs[0]
    scores = net.blobs[score].data[0].copy()
    labels = net.blobs[score].data[0].argmax(0)
    fc8 = [k for k in net.params if k.startswith('fc8')][0]
    net.params[fc8][0].data[...] = 0
    net.params[fc8][1].data[...] = np.arange(net.params[fc8][1].data.size) == 5
    net.forward()
    np.savez(out, scores=scores, labels=labels,
             surgery=net.blobs[score].data[0].argmax(0))
""")


@pytest.mark.parametrize("variant", ["DeepLab-LargeFOV", "DeepLab"])
def test_fcn_inference_and_net_surgery_on_the_zoo_through_import_caffe(variant, tmp_path):
    size = 65
    model = tmp_path / "deploy.prototxt"
    model.write_text(_deploy_text(variant, size))
    core = CoreNet(str(model), phase="TEST")
    weights = tmp_path / "w.caffemodel"
    core.save(str(weights))
    img = np.random.RandomState(5).uniform(-50, 50, (3, size, size)).astype(np.float32)
    np.save(tmp_path / "img.npy", img)
    with torch.no_grad():
        outs = core.forward(data=torch.from_numpy(img)[None])
    assert len(outs) == 1
    ref = next(iter(outs.values()))[0].numpy()
    env = dict(os.environ, DEEPLAB_CAFFE_SHIM_DIR=str(tmp_path / "shim"), PYTHONPATH=ROOT)
    shim = subprocess.run([sys.executable, "-c", "import deeplab_caffe.pycaffe as p; "
                           "print(p.shim_path())"], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()
    env["PYTHONPATH"] = os.pathsep.join([shim, ROOT])
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(model), str(weights),
                           str(tmp_path / "img.npy"), str(tmp_path / "out.npz")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["scores"], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(out["labels"], ref.argmax(0))
    assert out["labels"].shape == ref.shape[1:]
    assert (out["surgery"] == 5).all()


def test_python_layer_exceptions_surface_as_themselves_other_net_errors_stay():
    from deeplab_caffe.errors import NetError
    from deeplab_caffe.pycaffe.net import user_errors

    def layer_raises():
        try:
            raise KeyError("from the user's layer")
        except KeyError as e:
            raise NetError("PyLayer.setup raised KeyError", layer="py") from e
    with pytest.raises(KeyError, match="user's layer"):
        with user_errors():
            layer_raises()
    with pytest.raises(NetError, match="unknown bottom"):
        with user_errors():
            raise NetError("unknown bottom blob 'x'", layer="conv")


def test_forward_all_batches_and_cuts_the_padding(net):
    x = np.random.RandomState(6).randn(5, 3, 5, 5).astype(np.float32)
    out = net.forward_all(data=x)["pool"]
    assert out.shape == (5, 4, 1, 1)
    np.testing.assert_allclose(out, _reference(net, x).numpy(), rtol=1e-5, atol=1e-6)
    outs, diffs = net.forward_backward_all(data=x, pool=np.ones((5, 4, 1, 1), np.float32))
    xt = torch.from_numpy(x).requires_grad_()
    w, b = (torch.from_numpy(p.data.copy()) for p in net.params["conv"])
    torch.nn.functional.avg_pool2d(torch.relu(torch.nn.functional.conv2d(xt, w, b)), 3,
                                   1).sum().backward()
    np.testing.assert_allclose(diffs["data"], xt.grad.numpy(), rtol=1e-4, atol=1e-5)


CLASSIFIER_NET = """name: "c"
input: "data" input_shape { dim: 1 dim: 3 dim: 5 dim: 5 }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def test_classifier_center_crop_matches_the_net_on_the_preprocessed_crop(tmp_path):
    model = tmp_path / "c.prototxt"
    model.write_text(CLASSIFIER_NET)
    weights = tmp_path / "c.caffemodel"
    caffe.Net(str(model), caffe.TEST).save(str(weights))
    clf = caffe.Classifier(str(model), str(weights), image_dims=(7, 7), raw_scale=255,
                           channel_swap=(2, 1, 0))
    imgs = [np.random.RandomState(k).uniform(0, 1, (7, 7, 3)).astype(np.float32)
            for k in range(2)]
    probs = clf.predict(imgs, oversample=False)
    w, b = (p.data for p in clf.params["ip"])
    for img, p in zip(imgs, probs):
        x = img[1:6, 1:6, ::-1].transpose(2, 0, 1) * 255       # center 5x5, RGB->BGR, x255
        z = w @ x.reshape(-1) + b
        np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(), rtol=1e-4, atol=1e-6)
    ten = clf.predict(imgs)
    assert ten.shape == (2, 4) and np.allclose(ten.sum(1), 1, atol=1e-5)


def test_set_input_arrays_feeds_a_memory_data_net_batch_by_batch(tmp_path):
    model = tmp_path / "m.prototxt"
    model.write_text('layer { name: "d" type: "MemoryData" top: "data" top: "label" '
                     'memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }')
    net = caffe.Net(str(model), caffe.TEST)
    x = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    net.set_input_arrays(x, np.arange(4, dtype=np.float32))
    first = {k: v.copy() for k, v in net.forward().items()}   # pycaffe returns the blobs
    second = net.forward()
    np.testing.assert_array_equal(second["data"], x[2:])
    np.testing.assert_array_equal(first["label"].ravel(), [0, 1])
    with pytest.raises(ValueError, match="labels"):
        net.set_input_arrays(x, np.arange(3, dtype=np.float32))


def test_typed_solver_steps_snapshots_and_restores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(
        'name: "s" layer { name: "d" type: "DummyData" top: "x" top: "y" dummy_data_param { '
        'shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } data_filler { type: "gaussian" } } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "p" '
        'inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }\n'
        'layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }')
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt" base_lr: 0.01 lr_policy: "fixed" max_iter: 10 '
        'snapshot_prefix: "snap" type: "SGD" solver_mode: CPU')
    solver = caffe.AdamSolver(str(tmp_path / "solver.prototxt"))
    assert solver._core.spec.type == "Adam"
    before = solver.net.params["ip"][0].data.copy()
    solver.step(2)
    assert solver.iter == 2 and not np.array_equal(before, solver.net.params["ip"][0].data)
    solver.snapshot()
    again = caffe.AdamSolver(str(tmp_path / "solver.prototxt"))
    again.restore("snap_iter_2.solverstate")
    assert again.iter == 2
    np.testing.assert_array_equal(again.net.params["ip"][0].data,
                                  solver.net.params["ip"][0].data)


def test_backward_computes_what_caffe_net_init_says_it_needs(tmp_path):
    # Caffe's Net::Init: without force_backward the Input top needs no backward (nothing below
    # it learns), so its diff stays as it is; the convolution contributes to a loss (pool has
    # loss_weight 1) and gets its param diffs.  Without any loss nothing is computed.
    p = tmp_path / "net.prototxt"
    p.write_text(NET.replace("force_backward: true", "").replace(
        'top: "pool"', 'top: "pool" loss_weight: 1'))
    net = caffe.Net(str(p), caffe.TRAIN)
    net.blobs["data"].diff[...] = 3.0
    net.forward(data=np.random.RandomState(5).randn(2, 3, 5, 5).astype(np.float32))
    net.backward()
    assert (net.blobs["data"].diff == 3.0).all()
    assert np.abs(net.params["conv"][0].diff).sum() > 0
    p.write_text(NET.replace("force_backward: true", ""))
    net = caffe.Net(str(p), caffe.TRAIN)
    net.forward(data=np.ones((2, 3, 5, 5), np.float32))
    net.blobs["pool"].diff[...] = 1.0
    net.backward()
    assert not net.params["conv"][0].diff.any() and not net.blobs["conv"].diff.any()
