"""Python layers' own learnable blobs (``self.blobs.add_blob`` in setup), as in Caffe: the
layer's params, updated by the solver with the prototxt's ``param {}`` specs, written and read
with the net's weights, the same blobs pycaffe's ``net.params`` shows.  Gradients to compare
with come from torch autograd of the layer's function written here, not from the layer."""
import sys
import textwrap

import numpy as np
import pytest
import torch

from deeplab_caffe.blob import BlobVec
from deeplab_caffe.net import Net
from deeplab_caffe.solver import SGDSolver

from conftest import requires_cuda

MODULE = """
    import numpy as np

    class Ramp:
        # x = arange / 10, label = cos(arange), both (2, 3, 2, 2).
        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            top[0].reshape(2, 3, 2, 2)
            top[1].reshape(2, 3, 2, 2)

        def forward(self, bottom, top):
            n = top[0].count
            top[0].data[...] = (np.arange(n) / 10.0).reshape(top[0].shape)
            top[1].data[...] = np.cos(np.arange(n)).reshape(top[1].shape)

    class ChannelScaleBias:
        # y = w[c] * x + b, w one per channel, b one scalar: the layer's two learnable blobs.
        def setup(self, bottom, top):
            self.blobs.add_blob(bottom[0].channels)
            self.blobs.add_blob(1)
            self.blobs[0].data[...] = 1.5
            self.blobs[1].data[...] = 0.25

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].shape)

        def forward(self, bottom, top):
            w = self.blobs[0].data.reshape(1, -1, 1, 1)
            top[0].data[...] = w * bottom[0].data + self.blobs[1].data[0]

        def backward(self, top, propagate_down, bottom):
            g = top[0].diff
            self.blobs[0].diff[...] += (g * bottom[0].data).sum(axis=(0, 2, 3))
            self.blobs[1].diff[...] += g.sum()
            if propagate_down[0]:
                bottom[0].diff[...] = g * self.blobs[0].data.reshape(1, -1, 1, 1)
"""

SCALE_BIAS = ('layer { name: "sb" type: "Python" bottom: "{bottom}" top: "y" {params}'
              'python_param { module: "param_layers" layer: "ChannelScaleBias" } }\n')
INPUT = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 ' \
        'dim: 2 dim: 2 } } }\n'
X = (np.arange(24) / 10.0).reshape(2, 3, 2, 2).astype(np.float32)
LABEL = np.cos(np.arange(24)).reshape(2, 3, 2, 2).astype(np.float32)


@pytest.fixture
def param_layers(tmp_path, monkeypatch):
    (tmp_path / "param_layers.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("param_layers", None)


def scale_bias(bottom="x", params=""):
    return SCALE_BIAS.replace("{bottom}", bottom).replace("{params}", params)


def reference_grads(w, b, x, label):
    """d(EuclideanLoss(w[c] * x + b, label))/d(w, b) by torch autograd."""
    w = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    y = w.view(1, -1, 1, 1) * torch.tensor(x, dtype=torch.float64) + b
    loss = ((y - torch.tensor(label, dtype=torch.float64)) ** 2).sum() / 2 / x.shape[0]
    gw, gb = torch.autograd.grad(loss, (w, b))
    return gw.numpy(), gb.numpy()


def test_blobs_added_in_setup_are_the_layers_params(param_layers):
    net = Net(INPUT + scale_bias(), phase="TEST", device="cpu")
    w, b = net.params["sb"]
    assert isinstance(w, torch.nn.Parameter) and tuple(w.shape) == (3,)
    assert w.tolist() == [1.5] * 3 and b.tolist() == [0.25]
    layer = net.layers[1]
    assert layer.py.blobs[0].data.tolist() == [1.5] * 3
    layer.py.blobs[0].data[1] = 4.0              # the Python blob is the Parameter's memory
    assert w[1].item() == 4.0
    out = net.forward(x=torch.from_numpy(X))["y"]
    want = np.array([1.5, 4.0, 1.5], np.float32).reshape(1, 3, 1, 1) * X + 0.25
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)


def test_solver_steps_move_the_python_blobs_by_their_param_specs(param_layers):
    # The data come from a Python layer, so only the learnable blobs need the backward; w has
    # lr_mult 2 and decay_mult 1, b lr_mult 0 (frozen).  Two steps: diffs are cleared between
    # iterations (the layer's backward adds to them), momentum carries the first update.
    net = ('layer { name: "data" type: "Python" top: "x" top: "label" python_param { '
           'module: "param_layers" layer: "Ramp" } }\n'
           + scale_bias(params="param { lr_mult: 2 decay_mult: 1 } param { lr_mult: 0 } ")
           + 'layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "label" '
             'top: "loss" }\n')
    lr, wd, momentum = 0.1, 0.01, 0.9
    solver = SGDSolver(f'base_lr: {lr} lr_policy: "fixed" momentum: {momentum} '
                       f'weight_decay: {wd} max_iter: 2 solver_mode: CPU '
                       f'net_param {{ {net} }}', device="cpu")
    w, b = np.full(3, 1.5), np.array([0.25])
    history = np.zeros(3)
    for _ in range(2):
        gw, _ = reference_grads(w, b, X, LABEL)
        history = momentum * history + lr * 2 * (gw + wd * 1 * w)
        w = w - history
        solver.step(1)
        np.testing.assert_allclose(solver.net.params["sb"][0].detach().numpy(), w, rtol=1e-5)
    assert solver.net.params["sb"][1].item() == 0.25


def test_python_blobs_round_trip_through_a_caffemodel(param_layers, tmp_path):
    net = Net(INPUT + scale_bias(), phase="TEST", device="cpu")
    with torch.no_grad():
        net.params["sb"][0].copy_(torch.tensor([1.0, -2.0, 3.0]))
        net.params["sb"][1].fill_(-0.5)
    path = str(tmp_path / "sb.caffemodel")
    net.save(path)
    loaded = Net(INPUT + scale_bias(), weights=path, phase="TEST", device="cpu")
    assert loaded.params["sb"][0].tolist() == [1.0, -2.0, 3.0]
    assert loaded.params["sb"][1].tolist() == [-0.5]
    # the loaded values are what the Python layer's forward reads
    out = loaded.forward(x=torch.from_numpy(X))["y"].numpy()
    want = np.array([1.0, -2.0, 3.0], np.float32).reshape(1, 3, 1, 1) * X - 0.5
    np.testing.assert_allclose(out, want, rtol=1e-6)


def test_pycaffe_params_are_the_python_layers_blobs(param_layers, tmp_path):
    pytest.importorskip("google.protobuf", reason="pycaffe needs the protobuf package")
    import deeplab_caffe.pycaffe as caffe
    model = tmp_path / "sb.prototxt"
    model.write_text(INPUT + scale_bias(params="loss_weight: 1 "))
    net = caffe.Net(str(model), caffe.TRAIN)
    blob = net.params["sb"][0]
    assert blob is net.layers[1].blobs[0] is net._core.layers[1].py.blobs[0]
    # A TRAIN net without force_backward, y a loss: the input needs no backward, the params
    # do, so the layer's backward runs with propagate_down [False].
    net.blobs["x"].data[...] = X
    net.forward()
    net.blobs["y"].diff[...] = 1.0
    net.backward()
    np.testing.assert_allclose(blob.diff, X.sum(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(net.params["sb"][1].diff, [24.0])
    assert not net.blobs["x"].diff.any()
    # share_with: the second net's layer reads the first net's blobs
    blob.data[...] = [7, 8, 9]
    other = caffe.Net(str(model), caffe.TEST)
    other.share_with(net)
    assert other.params["sb"][0].data.tolist() == [7, 8, 9]
    out = other.forward(x=X)["y"]
    np.testing.assert_allclose(out, np.array([7, 8, 9], np.float32).reshape(1, 3, 1, 1) * X
                               + 0.25, rtol=1e-6)


def test_blob_vector_errors_name_the_bad_value(param_layers):
    net = Net(INPUT + scale_bias(), phase="TEST", device="cpu")
    blobs = BlobVec(net.layers[1])
    assert len(blobs) == 2 and blobs[-1] is blobs[1]
    with pytest.raises(IndexError, match="blob index 2 out of range: layer 'sb' has 2"):
        blobs[2]
    with pytest.raises(ValueError, match=r"negative dimension in \(3, -1\)"):
        blobs.add_blob(3, -1)


@requires_cuda
def test_python_blobs_on_the_gpu(param_layers, tmp_path):
    # The Python layer sees host mirrors of the device Parameters: what a script writes into
    # net.params reaches the layer's forward, what the layer's backward writes reaches grad.
    pytest.importorskip("google.protobuf", reason="pycaffe needs the protobuf package")
    import deeplab_caffe.pycaffe as caffe
    model = tmp_path / "sb.prototxt"
    model.write_text(INPUT + scale_bias(params="loss_weight: 1 "))
    caffe.set_mode_gpu()
    try:
        net = caffe.Net(str(model), caffe.TRAIN)
        assert net._core.params["sb"][0].device.type == "cuda"
        net.params["sb"][0].data[...] = [1, 2, 3]
        out = net.forward(x=X)["y"]
        np.testing.assert_allclose(out, np.array([1, 2, 3], np.float32).reshape(1, 3, 1, 1) * X
                                   + 0.25, rtol=1e-6)
        net.blobs["y"].diff[...] = 1.0
        net.backward()
        grad = net._core.params["sb"][0].grad
        assert grad.device.type == "cuda"
        np.testing.assert_allclose(grad.cpu().numpy(), X.sum(axis=(0, 2, 3)), rtol=1e-6)
    finally:
        caffe.set_mode_cpu()
