"""demo.py --crfrnn's stage (demo_crfrnn.py), small: the generated nets carry CRF-RNN's head with
the demo's DenseCRF parameters, `deeplab-caffe train -weights` fine-tunes through it (the train
loss falls, the CRF's learned blobs move and its frozen one does not), and val is scored before
and after."""
import argparse
import json
import os

import numpy as np
import pytest
import torch

from deeplab_caffe import Net
from deeplab_caffe.cli import demo, demo_crfrnn
from deeplab_caffe.io.caffemodel import read_caffemodel
from deeplab_caffe.proto import parse_net
from deeplab_caffe.solver.spec import load_solver


@pytest.fixture
def small_demo(tmp_path, monkeypatch):
    """A 6-train / 2-val synthetic set, an untrained demo net saved as the weights to fine-tune
    from, and a short fine-tune at a from-scratch rate."""
    out = str(tmp_path)
    data, _ = demo.make_data(out, argparse.Namespace(num_train=6, num_val=2, seed=2))
    defines = {"EXP": out, "DATA_ROOT": data, "TRAIN_SET": "train_aug", "TEST_SET": "val",
               "NUM_LABELS": str(demo.NUM_LABELS)}
    torch.manual_seed(0)
    weights = os.path.join(out, "untrained.caffemodel")
    Net(os.path.join(demo.PROTO, "train.prototxt"), phase="TRAIN", defines=defines).save(weights)
    monkeypatch.setattr(demo_crfrnn, "FT_ITERATIONS", 10)
    monkeypatch.setattr(demo_crfrnn, "FT_TEST_ITER", 1)
    monkeypatch.setattr(demo_crfrnn, "FT_BASE_LR", 0.001)
    torch.set_num_threads(1)
    return out, data, weights


def test_generated_nets_carry_crfrnn_head_with_the_demo_crf(tmp_path):
    defines = {"EXP": "/x", "DATA_ROOT": "/d", "TRAIN_SET": "t", "TEST_SET": "v",
               "NUM_LABELS": "6", "FEATURE_DIR": "/f"}
    crf = dict(demo.DEMO_CRF, bi_w=7.0)
    paths = demo_crfrnn.write_nets(str(tmp_path), demo.PROTO, defines, crf)
    for name, score in (("train", "fc8_demo_interp"), ("test", "fc8_interp")):
        layers = {layer.name: layer for layer in parse_net(paths[name]).layers}
        assert "label_shrink" not in layers and "fc8_mat" not in layers
        mf = layers["inference1"]
        assert mf.type == "MultiStageMeanfield"
        assert list(layers["splitting"].bottom) == [score]
        assert list(mf.bottom) == ["unary", "Q0", "data"]
        p = mf.message["multi_stage_meanfield_param"]
        assert (p["bilateral_filter_weight"], p["theta_alpha"], p["theta_beta"],
                p["spatial_filter_weight"], p["theta_gamma"], p["num_iterations"]) == (
            7.0, crf["bi_xy_std"], crf["bi_rgb_std"], crf["pos_w"], crf["pos_xy_std"],
            crf["max_iter"])
    loss = [layer for layer in parse_net(paths["train"]).layers
            if layer.type == "SoftmaxWithLoss"]
    assert len(loss) == 1 and list(loss[0].bottom) == ["pred", "label"]
    solver = load_solver(paths["solver"])
    assert solver.clip_gradients == 10.0 and solver.base_lr == 1e-4


def test_finetune_stage_runs_and_its_loss_falls(small_demo):
    out, data, weights = small_demo
    args = demo.parse_args(["--out", out])
    args.crf["max_iter"] = 2            # CRF-RNN's minimum, for time
    net_res = {k: {"miou": 0.5, "pixel_acc": 0.5} for k in ("net", "crf")}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"seed": 2}, f)
    s = demo_crfrnn.stage(out, demo.PROTO, data, weights, args, net_res, demo.NUM_LABELS)
    demo_crfrnn.add_to_results(out, s, {"wall": 1.0, "cpu": 1.0})
    curve = s["train_loss_curve"]
    assert curve[0][0] == 0 and curve[-1][0] == 10
    assert curve[-1][1] < 0.95 * curve[0][1], curve
    tuned = read_caffemodel(os.path.join(out, s["weights"])).layer("inference1")
    init = Net(os.path.join(out, "crfrnn", "test.prototxt")).layer("inference1").blobs
    assert len(tuned.blobs) == 3
    for got, start, lr_mult in zip(tuned.blobs, init, demo_crfrnn.CRF_LR_MULT):
        assert got.shape == tuple(start.shape)
        if lr_mult:
            assert not np.allclose(got, start.detach().numpy()), "a learned CRF blob did not move"
        else:       # frozen (the compatibility): Potts as initialised
            np.testing.assert_array_equal(got, start.detach().numpy())
    for key in ("net_crfrnn", "finetuned_crfrnn"):
        assert 0.0 <= s["miou"][key] <= 1.0
    results = json.loads(open(os.path.join(out, "results.json")).read())
    assert results["seed"] == 2 and results["crfrnn"]["miou"] == s["miou"]
    assert "fine-tuned net + CRF-RNN layer" in open(os.path.join(out, "results.md")).read()
