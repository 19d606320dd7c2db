"""tools/time_net.py (like `caffe time`) on a tiny net."""
import json

from deeplab_caffe.cli import time_net

TINY = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 17 dim: 17 } shape { dim: 2 dim: 1 dim: 17 dim: 17 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 2 dilation: 2 engine: CAFFE
                            weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "score" type: "Convolution" bottom: "pool1" top: "score"
        convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "up" type: "Interp" bottom: "score" top: "up" interp_param { zoom_factor: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "up" bottom: "label" top: "loss" }
"""


def test_time_net_reports_every_layer(tmp_path, capsys):
    model = tmp_path / "tiny.prototxt"
    model.write_text(TINY)
    out = tmp_path / "t.json"
    assert time_net.main(["--model", str(model), "--iterations", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["layer"] for r in report["layers"]] == ["data", "conv1", "relu1", "pool1", "score",
                                                       "up", "loss"]
    assert all(r["forward_ms"] >= 0 and r["backward_ms"] >= 0 for r in report["layers"])
    assert report["forward_backward_ms"] > 0
    text = capsys.readouterr().out
    assert "Average Forward pass" in text and "Average Forward-Backward" in text


def test_time_net_bad_model_is_a_message(tmp_path, capsys):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer { name: "x" type: "ReLU" bottom: "nope" top: "y" }')
    assert time_net.main(["--model", str(bad), "--iterations", "1"]) == 1
    assert "unknown bottom blob 'nope'" in capsys.readouterr().err
