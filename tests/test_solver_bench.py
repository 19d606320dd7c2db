"""tools/bench_net.py's torch.nn LargeFOV computes what our Net computes from
prototxt/DeepLab-LargeFOV/train.prototxt (so the benchmark compares the same network)."""
import importlib.util
import os

import pytest
import torch

import deeplab_caffe as dc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_net_tool", os.path.join(ROOT, "tools", "bench_net.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "prototxt", "DeepLab-LargeFOV",
                                                    "train.prototxt")),
                    reason="prototxt/DeepLab-LargeFOV is not there")
def test_reference_equals_our_net():
    b = _bench()
    torch.manual_seed(0)
    spec = b.net_spec(1, 41, 5, b.PROTOTXT)
    net = dc.Net(spec, phase="TEST", device="cpu")
    b.he_init(net, seed=3)
    fc8 = [n for n in net.layer_names if n.startswith("fc8")][0]
    ref = b.LargeFOV(net, fc8).eval()
    data, label = b.inputs(1, 41, 5, "cpu")
    with torch.no_grad():
        net.forward(end=fc8, data=data, label=label)
        want = ref(data)
    assert net.blobs[fc8].shape == (1, 5, 6, 6) == want.shape    # 41 -> 21 -> 11 -> 6
    torch.testing.assert_close(net.blobs[fc8], want, rtol=1e-4, atol=1e-4 * want.abs().max())
