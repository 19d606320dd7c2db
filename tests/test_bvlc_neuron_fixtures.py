"""BVLC master's own CIFAR-10 nets with BatchNorm and Sigmoid (../shared/fixtures/caffe; skipped
when absent) build and run forward and backward in both phases.  Their LMDB Data layers are
another module's business: here an Input layer with the same tops stands in for them."""
import os

import pytest
import torch

import deeplab_caffe as dc
from caffemodel_util import FIX, needs_fixtures

CIFAR = os.path.join(FIX, "bvlc_master", "examples", "cifar10")
INPUT = ('layer { name: "cifar" type: "Input" top: "data" top: "label" '
         'input_param { shape { dim: 8 dim: 3 dim: 32 dim: 32 } shape { dim: 8 } } }\n')


def without_data_layers(text):
    """``text`` with every ``layer { ... type: "Data" ... }`` block removed, Input put first."""
    out, i = [], 0
    while True:
        start = text.find("layer {", i)
        if start < 0:
            out.append(text[i:])
            break
        depth, j = 0, start
        while True:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
            if depth == 0 and text[j - 1] == "}":
                break
        block = text[start:j]
        out.append(text[i:start])
        if 'type: "Data"' not in block:
            out.append(block)
        i = j
    body = "".join(out)
    first = body.find("layer {")
    return body[:first] + INPUT + body[first:]


@needs_fixtures
@pytest.mark.parametrize("name", ["cifar10_full_sigmoid_train_test_bn.prototxt",
                                  "cifar10_full_sigmoid_train_test.prototxt"])
def test_bvlc_sigmoid_cifar_nets_train_and_test(name):
    with open(os.path.join(CIFAR, name)) as f:
        text = without_data_layers(f.read())
    torch.manual_seed(0)
    train = dc.Net(text, phase="TRAIN")
    test = dc.Net(text, phase="TEST")
    test.share_trained_layers_with(train)
    x = torch.randn(8, 3, 32, 32)
    label = torch.randint(0, 10, (8,)).float()
    out = train.forward(data=x, label=label)
    assert torch.isfinite(out["loss"]).all()
    train.backward()
    assert train.params["conv1"][0].grad.abs().sum() > 0
    bns = [n for n, layer in zip(train.layer_names, train.layers) if layer.type_name == "BatchNorm"]
    assert len(bns) == (3 if name.endswith("_bn.prototxt") else 0)
    for bn in bns:
        # one TRAIN forward: the moving-average weight is 1 and the sums hold the batch stats
        mean, var, weight = train.params[bn]
        assert weight.tolist() == [1.0] and var.min() > 0
        assert train.params[bn][0].grad is None    # lr_mult 0: no gradient is computed
    acc = test.forward(data=x, label=label)["accuracy"]
    assert 0.0 <= acc.item() <= 1.0
