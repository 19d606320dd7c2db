"""tools/demo.py --quick end to end (a few iterations on a tiny synthetic set): every output is
written, results.json holds the table's numbers, and the synthetic set is kept on a rerun with the
same parameters.  The CRF's gain is not asserted: a 5-iteration net is too weak to show it (the
full demo's is measured, see the demo's results.md)."""
import argparse
import importlib.util
import json
import os

import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _demo():
    spec = importlib.util.spec_from_file_location("tool_demo",
                                                  os.path.join(ROOT, "tools", "demo.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _unit(v):
    return v is not None and 0.0 <= v <= 1.0


def test_demo_quick(tmp_path):
    demo = _demo()
    out = tmp_path / "demo_out"
    assert demo.main(["--quick", "--out", str(out), "--seed", "3", "--bi-xy-std", "20"]) == 0
    for name in ("results.json", "results.md", "trimap.png", "examples.png", "train.log",
                 "train_log.png", "test/results.json", "model/demo/train_iter_5.caffemodel",
                 "data/list/val.txt", "list/train_aug.txt"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())
    assert res["seed"] == 3 and res["quick"] is True and res["iterations"] == 5
    assert res["val_images"] == demo.QUICK["num_val"]
    assert res["crf_params"]["bi_xy_std"] == 20.0
    assert res["crf_params"]["bi_rgb_std"] == demo.DEMO_CRF["bi_rgb_std"]
    for key in ("net", "crf"):
        for metric in ("pixel_acc", "mean_acc", "miou"):
            assert _unit(res[key][metric]), (key, metric, res[key][metric])
        assert set(res["trimap_miou"][key]) == {str(w) for w in demo.REPORT_WIDTHS}
        assert all(_unit(v) for v in res["trimap_miou"][key].values())
        assert len(res["trimap"][key]) == len(res["trimap"]["widths"]) == 40
    for w, v in res["crf_gain"]["trimap_miou"].items():
        assert v == pytest.approx(res["trimap_miou"]["crf"][w] - res["trimap_miou"]["net"][w])
    assert res["crf_gain"]["miou"] == pytest.approx(res["crf"]["miou"] - res["net"]["miou"])
    # the per-class detail is test_net's own JSON: the summary must agree with it
    full = json.loads((out / "test" / "results.json").read_text())
    assert full["crf_source"] == "dense_crf" and full["images"] == res["val_images"]
    assert full["net"]["miou"] == res["net"]["miou"]
    assert full["crf"]["miou"] == res["crf"]["miou"]
    log = (out / "train.log").read_text()
    assert "Iteration 0, loss = " in log and "Optimization Done." in log
    md = (out / "results.md").read_text()
    assert "| DeepLab-CRF (net + CRF) | " in md and "| CRF gain (points) | " in md
    assert "bi_xy_std 20" in md
    assert f"{100 * res['net']['miou']:.2f}" in md
    # four rows of four panels: input, ground truth, net, net + CRF (96..128 px each)
    w, h = Image.open(out / "examples.png").size
    assert 4 * 96 <= w <= 4 * 128 + 3 * 4 and 4 * 96 <= h <= 4 * (128 + 14 + 4)
    assert Image.open(out / "trimap.png").size[0] > 100


def test_demo_keeps_matching_data(tmp_path, capsys):
    demo = _demo()
    args = argparse.Namespace(num_train=3, num_val=2, seed=1)
    out = str(tmp_path)
    data, params = demo.make_data(out, args)
    stamp = os.path.getmtime(os.path.join(data, "JPEGImages", "train_000000.jpg"))
    assert sorted(os.listdir(os.path.join(out, "list"))) == sorted(os.listdir(
        os.path.join(data, "list")))
    capsys.readouterr()
    demo.make_data(out, args)
    assert "keeping" in capsys.readouterr().out
    assert os.path.getmtime(os.path.join(data, "JPEGImages", "train_000000.jpg")) == stamp
    demo.make_data(out, argparse.Namespace(num_train=4, num_val=2, seed=1))
    assert len(os.listdir(os.path.join(data, "JPEGImages"))) == 6
    assert "writing" in capsys.readouterr().out
