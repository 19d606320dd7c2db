"""tools/bench_net.py's torch.nn LargeFOV computes what our Net computes from
prototxt/DeepLab-LargeFOV/train.prototxt (so the benchmark compares the same network)."""
import pytest
import torch

import deeplab_caffe as dc
from deeplab_caffe.bench import net as b


def test_reference_equals_our_net():
    # A tracked file: its absence is a broken checkout, so the test fails (no skip).
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


@pytest.mark.parametrize("argv, message", [
    (["--pipeline"], "--load >= 1"),
    (["--pipeline", "--load", "2", "--rounds", "0"], "--rounds >= 1"),
    (["--pipeline", "--load", "2", "--stages", "train,bogus"], "'train,bogus'"),
    (["--load", "-1"], "got -1"),
])
def test_bad_pipeline_flags_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        b.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
