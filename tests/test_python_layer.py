"""Python layers as pycaffe runs them: modules written to a folder on sys.path, an FCN-style
and a py-faster-rcnn-style data layer, and a layer with a backward checked against autograd of
the same function written here in torch."""
import sys
import textwrap

import numpy as np
import pytest
import torch

from deeplab_caffe.errors import NetError
from deeplab_caffe.net import Net

MODULES = {
    # FCN's voc_layers.py style: param_str is a Python dict literal, setup reads it and checks
    # the blob counts, reshape sizes the tops, forward fills them.
    "fcn_style_layers": """
        import ast
        import numpy as np

        class VOCLikeDataLayer:
            def setup(self, bottom, top):
                params = ast.literal_eval(self.param_str)
                self.size = params["size"]
                self.seed = params.get("seed", 1337)
                self.calls = 0
                if len(top) != 2:
                    raise Exception("Need to define two tops: data and label.")
                if len(bottom) != 0:
                    raise Exception("Do not define a bottom.")

            def reshape(self, bottom, top):
                top[0].reshape(1, 3, self.size, self.size + 1)
                top[1].reshape(1, 1, self.size, self.size + 1)

            def forward(self, bottom, top):
                self.calls += 1
                top[0].data[...] = self.calls
                top[1].data[...] = np.arange(self.size * (self.size + 1)).reshape(
                    self.size, self.size + 1) % 2

            def backward(self, top, propagate_down, bottom):
                pass
    """,
    # py-faster-rcnn's RoIDataLayer style: a base class of its own, phase checks, top shapes
    # set in setup with the legacy num/channels/height/width, blob attributes read back.
    "rcnn_style_layers": """
        import yaml_free_config as cfg

        class Base(object):
            def __init__(self, *args):
                pass

        class RoIDataLayer(Base):
            def setup(self, bottom, top):
                self._num_classes = int(self.param_str.split("=")[1])
                self._name_to_top_map = {"data": 0, "rois": 1, "labels": 2}
                top[0].reshape(cfg.IMS_PER_BATCH, 3, 4, 5)
                top[1].reshape(1, 5)
                top[2].reshape(1)
                self.shapes_seen = (top[0].num, top[0].channels, top[0].height, top[0].width,
                                    top[1].count)

            def forward(self, bottom, top):
                rois = np.array([[0, 1, 1, 3, 3], [0, 0, 0, 2, 2]], np.float32)
                top[1].reshape(*rois.shape)
                top[1].data[...] = rois
                top[2].reshape(2)
                top[2].data[...] = [1, self._num_classes - 1]
                top[0].data[...] = 0.5 if self.phase == 0 else -0.5

            def backward(self, top, propagate_down, bottom):
                pass

            def reshape(self, bottom, top):
                pass

        import numpy as np
    """,
    "yaml_free_config": "IMS_PER_BATCH = 2\n",
    # A computing layer with a backward: y = x0 * x1 + 3 x0, checked against autograd.
    "math_layers": """
        class MulAdd:
            def setup(self, bottom, top):
                self.k = float(self.param_str or 3)

            def reshape(self, bottom, top):
                top[0].reshape(*bottom[0].data.shape)

            def forward(self, bottom, top):
                top[0].data[...] = bottom[0].data * bottom[1].data + self.k * bottom[0].data

            def backward(self, top, propagate_down, bottom):
                if propagate_down[0]:
                    bottom[0].diff[...] = top[0].diff * (bottom[1].data + self.k)
                if propagate_down[1]:
                    bottom[1].diff[...] = top[0].diff * bottom[0].data

        class NoForward:
            def setup(self, bottom, top):
                pass

            def reshape(self, bottom, top):
                top[0].reshape(1)

        class Raises:
            def setup(self, bottom, top):
                raise ValueError("bad param_str")

            def reshape(self, bottom, top):
                pass

            def forward(self, bottom, top):
                pass
    """,
}


@pytest.fixture
def py_modules(tmp_path, monkeypatch):
    for name, text in MODULES.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in MODULES:
        sys.modules.pop(name, None)


def python_layer(name, module, layer, bottoms=(), tops=("out",), param_str=None):
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    ps = f' param_str: "{param_str}"' if param_str is not None else ""
    return (f'layer {{ name: "{name}" type: "Python" {b} {t} python_param {{ module: "{module}" '
            f'layer: "{layer}"{ps} }} }}\n')


def test_fcn_style_data_layer(py_modules):
    text = python_layer("data", "fcn_style_layers", "VOCLikeDataLayer", tops=("data", "label"),
                        param_str="{'size': 3, 'seed': 1}")
    net = Net(text, phase="TRAIN", device="cpu")
    assert net.blob_shapes["data"] == (1, 3, 3, 4)
    assert net.blob_shapes["label"] == (1, 1, 3, 4)
    for k in (1, 2):
        net.forward()
        assert torch.equal(net.blobs["data"], torch.full((1, 3, 3, 4), float(k)))
    assert net.blobs["label"].flatten().tolist() == [i % 2 for i in range(12)]


@pytest.mark.parametrize("phase, value", [("TRAIN", 0.5), ("TEST", -0.5)])
def test_rcnn_style_data_layer(py_modules, phase, value):
    text = python_layer("input-data", "rcnn_style_layers", "RoIDataLayer",
                        tops=("data", "rois", "labels"), param_str="num_classes=21")
    net = Net(text, phase=phase, device="cpu")
    assert net.blob_shapes["data"] == (2, 3, 4, 5)
    assert net.layers[0].py.shapes_seen == (2, 3, 4, 5, 5)
    net.forward()
    assert net.blobs["rois"].shape == (2, 5)       # reshaped in forward
    assert net.blobs["labels"].tolist() == [1, 20]
    assert torch.equal(net.blobs["data"], torch.full((2, 3, 4, 5), value))


def test_python_layer_backward_matches_autograd(py_modules):
    text = ('layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 '
            'dim: 3 } } }\n' + python_layer("f", "math_layers", "MulAdd", ("a", "b"), ("y",),
                                             "2.5"))
    net = Net(text, phase="TRAIN", device="cpu")
    rng = np.random.default_rng(0)
    a = torch.tensor(rng.normal(size=(2, 3)), dtype=torch.float32, requires_grad=True)
    b = torch.tensor(rng.normal(size=(2, 3)), dtype=torch.float32, requires_grad=True)
    diff = torch.tensor(rng.normal(size=(2, 3)), dtype=torch.float32)
    y = net.layers[1](a, b)[0]
    want = a * b + 2.5 * a
    assert torch.allclose(y, want)
    ga, gb = torch.autograd.grad(y, (a, b), diff)
    wa, wb = torch.autograd.grad(want, (a, b), diff)
    assert torch.allclose(ga, wa) and torch.allclose(gb, wb)
    # propagate_down false for b: only a's diff is asked for
    ga_only = torch.autograd.grad(net.layers[1](a, b.detach())[0], a, diff)[0]
    assert torch.allclose(ga_only, wa)


def test_python_layer_errors(py_modules):
    with pytest.raises(NetError, match="layer 'p'.*'no_such_module' cannot be imported"):
        Net(python_layer("p", "no_such_module", "L"), device="cpu")
    with pytest.raises(NetError, match="module 'math_layers' has no 'Nope'"):
        Net(python_layer("p", "math_layers", "Nope"), device="cpu")
    with pytest.raises(NetError, match="math_layers.NoForward lacks forward"):
        Net(python_layer("p", "math_layers", "NoForward"), device="cpu")
    with pytest.raises(NetError, match="Raises.setup raised ValueError: bad param_str"):
        Net(python_layer("p", "math_layers", "Raises"), device="cpu")


def test_blob_view_semantics():
    from deeplab_caffe.blob import Blob
    t = torch.zeros(2, 3, 4, 5)
    blob = Blob.holding(t)
    blob.data[0, 0, 0, 0] = 7
    assert t[0, 0, 0, 0] == 7                 # a view of the tensor, not a copy
    assert (blob.num, blob.channels, blob.height, blob.width, blob.count) == (2, 3, 4, 5, 120)
    blob.reshape(6)
    # Caffe's LegacyShape: the axes a blob lacks count 1, from the end.
    assert blob.shape == (6,)
    assert (blob.num, blob.channels, blob.height, blob.width) == (6, 1, 1, 1)
    blob.diff = 2
    assert blob.diff.tolist() == [2] * 6


def test_python_layers_train_with_the_solver(py_modules):
    # A Python data layer feeding InnerProduct, then the Python MulAdd (its backward in the
    # chain), then a Euclidean loss: one SGD step moves the weights by -lr * their gradient,
    # which the same net computes with net.backward before the step.
    from deeplab_caffe.solver import SGDSolver
    net_text = (python_layer("data", "fcn_style_layers", "VOCLikeDataLayer",
                             tops=("data", "label"), param_str="{'size': 2}")
                + 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
                  'inner_product_param { num_output: 6 weight_filler { type: "gaussian" '
                  'std: 0.1 } } }\n'
                + 'layer { name: "flat" type: "Flatten" bottom: "label" top: "flat" }\n'
                + python_layer("f", "math_layers", "MulAdd", ("ip", "flat"), ("y",), "1")
                + 'layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "flat" '
                  'top: "loss" }\n')
    solver_text = ('base_lr: 0.01 lr_policy: "fixed" max_iter: 1 solver_mode: CPU '
                   f'random_seed: 3 net_param {{ {net_text} }}')
    solver = SGDSolver(solver_text, device="cpu")
    w0 = solver.net.params["ip"][0].detach().clone()
    probe = SGDSolver(solver_text, device="cpu")
    probe.net.forward()
    probe.net.backward()
    grad = probe.net.params["ip"][0].grad.clone()
    assert grad.abs().sum() > 0
    solver.step(1)
    assert torch.allclose(solver.net.params["ip"][0].detach(), w0 - 0.01 * grad, atol=1e-6)
