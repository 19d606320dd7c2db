"""tools/test_net.py, segment.py, crf_grid_search.py and plot_trimap.py end to end on a tiny net
over a synthetic VOC-style set (random weights, saved once so every tool sees the same net)."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import deeplab_caffe as dc
from deeplab_caffe.cli import crf_grid_search, plot_trimap, segment, test_net
from deeplab_caffe.data.synthetic import make_synthetic_voc
from deeplab_caffe.data.voc import load_label
from deeplab_caffe.eval import confusion_matrix, scores, trimap_mask, trimap_miou

NUM_CLASSES = 3
CROP = 33

DATA = """
layer {{ name: "data" type: "ImageSegData" top: "data" top: "label" {dim_top}
  image_data_param {{ root_folder: "${{ROOT}}" source: "${{ROOT}}/list/val.txt"
                     label_type: {label_type} batch_size: {batch} }}
  transform_param {{ mean_value: 104.008 mean_value: 116.669 mean_value: 122.675
                    crop_size: {crop} mirror: false }} }}"""
BODY = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 pad: 1 kernel_size: 3
                      weight_filler { type: "gaussian" std: 0.02 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "fc8" type: "Convolution" bottom: "pool1" top: "fc8"
  convolution_param { num_output: 3 kernel_size: 1
                      weight_filler { type: "gaussian" std: 0.3 }
                      bias_filler { type: "gaussian" std: 0.3 } } }
layer { name: "fc8_interp" type: "Interp" bottom: "fc8" top: "fc8_interp"
  interp_param { zoom_factor: 2 } }
layer { name: "fc8_mat" type: "MatWrite" bottom: "fc8_interp"
  mat_write_param { prefix: "${FEATURE_DIR}/fc8/" source: "${ROOT}/list/val_id.txt" } }
"""
CRF = """
layer { name: "crf" type: "DenseCRF" bottom: "fc8_interp" bottom: "data_dim" bottom: "data"
  top: "crf_inf"
  dense_crf_param { max_iter: 10 pos_w: 3 pos_xy_std: 3 bi_w: 4 bi_xy_std: 10 bi_rgb_std: 5 } }
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval_tools")
    # widths up to 40 > crop 33: the TEST centre crop is exercised too
    make_synthetic_voc(tmp / "voc", num_train=0, num_val=3, size=((20, 30), (22, 40)),
                       num_classes=NUM_CLASSES, seed=4)
    protos = {}
    for name, label_type, dim, crf in (("pixel", "PIXEL", True, False),
                                       ("none", "NONE", False, False),
                                       ("crf", "NONE", True, True)):
        text = 'name: "tiny"' + DATA.format(
            dim_top='top: "data_dim"' if dim else "", label_type=label_type, batch=1,
            crop=CROP) + BODY + (CRF if crf else "")
        protos[name] = tmp / f"{name}.prototxt"
        protos[name].write_text(text)
    torch.manual_seed(0)
    net = dc.Net(str(protos["pixel"]), defines={"ROOT": str(tmp / "voc"),
                                                "FEATURE_DIR": str(tmp / "feat")})
    weights = tmp / "tiny.caffemodel"
    net.save(str(weights))
    return tmp, protos, weights


def _gt_crops(voc):
    """Ground truth as DeepLab's TEST crop leaves it: centre crop to CROP, no resizing."""
    out = {}
    with open(os.path.join(voc, "list", "val.txt")) as f:
        for line in f:
            img, lab = line.split()
            g = load_label(voc + lab)
            h, w = g.shape
            y0, x0 = max(h - CROP, 0) // 2, max(w - CROP, 0) // 2
            out[os.path.splitext(os.path.basename(img))[0]] = g[y0:y0 + CROP, x0:x0 + CROP]
    return out


def test_test_net_end_to_end(setup, capsys):
    tmp, protos, weights = setup
    voc, out = str(tmp / "voc"), tmp / "out_pixel"
    rc = test_net.main(["--model", str(protos["pixel"]), "--weights", str(weights),
                                 "--define", f"ROOT={voc}", "--num-classes", "3", "--crf",
                                 "--bi-xy-std", "10", "--out", str(out), "--save-scores",
                                 "--save-labels", "--trimap", "1-3", "--quiet", "--mat-write"])
    assert rc == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "mean IoU" in printed and "crf" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["images"] == 3 and res["score_blob"] == "fc8_interp"
    assert res["crf_source"] == "dense_crf" and res["crf_params"]["bi_xy_std"] == 10
    assert res["crf_params"]["bi_w"] == 4 and res["crf_params"]["max_iter"] == 10
    gts = _gt_crops(voc)
    for key, sub in (("net", "labels"), ("crf", "labels_crf")):
        r = res[key]
        assert set(r) >= {"pixel_acc", "mean_acc", "iou", "miou", "conf"}
        assert len(r["iou"]) == 3 and np.shape(r["conf"]) == (3, 3)
        preds = {k: load_label(str(out / sub / f"{k}.png")) for k in gts}
        conf = sum(confusion_matrix(preds[k], gts[k][:preds[k].shape[0], :preds[k].shape[1]], 3)
                   for k in gts)
        assert all(preds[k].shape == gts[k].shape for k in gts)    # cropped to the valid region
        np.testing.assert_array_equal(conf, np.array(r["conf"]))
        assert r["miou"] == pytest.approx(scores(conf)["miou"], abs=1e-12)
        tri = trimap_miou([preds[k] for k in gts], [gts[k] for k in gts], [1, 2, 3], 3)
        assert res["trimap"][key] == pytest.approx([tri[1], tri[2], tri[3]], abs=1e-12)
        for i, width in enumerate((1, 2, 3)):
            right = total = 0
            for k in gts:
                band = trimap_mask(gts[k], width) & (gts[k] != 255)
                right += (preds[k][band] == gts[k][band]).sum()
                total += band.sum()
            assert res["trimap"][key + "_pixel_acc"][i] == pytest.approx(right / total)
        scored = "scores" if key == "net" else "scores_crf"
        for k in gts:
            s = np.load(out / scored / f"{k}.npy")
            assert s.shape == (3,) + gts[k].shape and s.dtype == np.float32
            np.testing.assert_array_equal(s.argmax(0), preds[k])
    features = sorted(os.listdir(tmp / "out_pixel" / "features" / "fc8"))    # --mat-write
    assert features == sorted(f"{k}_blob_0.mat" for k in gts)
    # The plot tool, from the JSON and from the saved PNGs, agrees with test_net.
    plot = plot_trimap
    assert plot.main([str(out / "results.json"), "--out", str(tmp / "t1.png")]) == 0
    assert plot.main(["--list", os.path.join(voc, "list", "val.txt"), "--root", voc,
                      "--pred", f"net={out / 'labels'}", "--pred", f"crf={out / 'labels_crf'}",
                      "--widths", "1-3", "--num-classes", "3", "--out", str(tmp / "t2.png"),
                      "--json", str(tmp / "t2.json")]) == 0
    curves = json.loads((tmp / "t2.json").read_text())
    assert curves["crf"]["miou"] == pytest.approx([100 * v for v in res["trimap"]["crf"]])
    assert plot.main([str(out / "results.json"), "--metric", "pixel_acc", "--out",
                      str(tmp / "t3.png"), "--json", str(tmp / "t3.json")]) == 0
    curves = json.loads((tmp / "t3.json").read_text())
    assert curves["DeepLab"]["pixel_acc"] == pytest.approx(
        [100 * v for v in res["trimap"]["net_pixel_acc"]])
    assert Image.open(tmp / "t1.png").size == (640, 420)


def test_test_net_label_sources_and_crf_layer_agree(setup, capsys):
    """label_type NONE (ground truth from the list) and a DENSE_CRF layer in the net."""
    tmp, protos, weights = setup
    voc = str(tmp / "voc")
    common = ["--weights", str(weights), "--define", f"ROOT={voc}", "--num-classes", "3",
              "--quiet", "--bi-xy-std", "10"]
    t = test_net
    assert t.main(["--model", str(protos["pixel"]), "--out", str(tmp / "a"), "--crf"]
                  + common) == 0
    assert t.main(["--model", str(protos["none"]), "--out", str(tmp / "b"), "--crf"]
                  + common) == 0
    assert t.main(["--model", str(protos["crf"]), "--out", str(tmp / "c")] + common) == 0
    a, b, c = (json.loads((tmp / d / "results.json").read_text()) for d in "abc")
    assert sorted(os.listdir(tmp / "a")) == ["results.json"]    # MatWrite skipped by default
    assert a["net"]["conf"] == b["net"]["conf"] == c["net"]["conf"]
    assert a["crf"]["conf"] == b["crf"]["conf"]
    assert c["crf_source"] == "net" and c["crf_blob"] == "crf_inf"
    # the DenseCRF layer and dense_crf on the net's scores agree (same parameters)
    assert np.abs(np.array(c["crf"]["conf"]) - np.array(a["crf"]["conf"])).sum() <= 4
    capsys.readouterr()
    assert t.main(["--model", str(protos["pixel"]), "--out", str(tmp / "d"),
                   "--num-classes", "5", "--define", f"ROOT={voc}", "--quiet"]) == 1
    assert "has 3 channels" in capsys.readouterr().err
    assert t.main(["--model", str(protos["pixel"]), "--out", str(tmp / "d"),
                   "--define", "ROOT"]) == 1
    assert "KEY=VALUE" in capsys.readouterr().err


def test_segment_any_size_batched(setup, capsys):
    tmp, protos, weights = setup
    rng = np.random.default_rng(1)
    paths = []
    for i, (h, w) in enumerate(((20, 27), (41, 18), (30, 30))):
        p = tmp / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    out = tmp / "seg"
    rc = segment.main(["--model", str(protos["crf"]), "--weights", str(weights),
                                "--out", str(out), "--batch-size", "2", "--quiet"] + paths)
    assert rc == 0, capsys.readouterr().err
    from deeplab_caffe.eval.inference import Segmenter, labels_of
    defines = {"ROOT": "unused", "FEATURE_DIR": "unused"}
    seg = Segmenter(str(protos["crf"]), str(weights), defines=defines)
    for i, p in enumerate(paths):
        img = np.asarray(Image.open(p).convert("RGB"))
        for suffix in ("", "_crf"):
            lab = load_label(str(out / f"img{i}{suffix}.png"))
            assert lab.shape == img.shape[:2]
        panel = Image.open(out / f"img{i}_panel.png")
        assert panel.size[0] == 3 * img.shape[1] + 2 * 4            # input | net | net+CRF
        # one image alone gives the labels of the batched run (scores to rounding)
        alone = seg([img])[0]
        lab = load_label(str(out / f"img{i}.png"))
        assert (labels_of(alone, "net") != lab).mean() < 0.01
    # the net's scores for an image padded as test_net pads it (with the mean) match
    assert seg.fit(20, 0) == 21 and seg.fit(27, 1) == 27


def test_segment_fixed_size_net_crops_and_pads(tmp_path):
    """An Input-layer net whose Interp has a fixed output cannot reshape: crop/pad to 33."""
    proto = tmp_path / "deploy.prototxt"
    proto.write_text(
        'name: "fixed" input: "data" input_shape { dim: 1 dim: 3 dim: 33 dim: 33 }\n' +
        BODY.replace("interp_param { zoom_factor: 2 }", "interp_param { height: 33 width: 33 }")
        .split('layer { name: "fc8_mat"')[0])
    from deeplab_caffe.eval.inference import Segmenter, labels_of
    torch.manual_seed(0)
    seg = Segmenter(str(proto))
    assert seg.fixed == (33, 33) and seg.fit(40, 0) is None and seg.fit(30, 0) == 33
    img = np.random.default_rng(2).integers(0, 256, (40, 20, 3), dtype=np.uint8)
    res = seg([img])[0]
    assert res["valid"] == (3, 0, 33, 20)                         # centre crop of 40 rows
    lab = labels_of(res, "net")
    assert lab.shape == (40, 20)
    assert (lab[:3] == 255).all() and (lab[36:] == 255).all() and (lab[3:36] < 3).all()


def test_crf_grid_search_tool(setup, capsys):
    tmp, protos, weights = setup
    voc, out = str(tmp / "voc"), tmp / "grid"
    args = ["--model", str(protos["pixel"]), "--weights", str(weights), "--define",
            f"ROOT={voc}", "--num-classes", "3", "--num-images", "2", "--grid",
            "4;5,10;3,10", "--fine-radius", "0", "--crf-iter", "3", "--workers", "1",
            "--out", str(out), "--quiet"]
    g = crf_grid_search
    assert g.main(args) == 0, capsys.readouterr().err
    res = json.loads((out / "crf_grid.json").read_text())
    assert res["images"] == 2 and len(res["rows"]) == 4
    assert res["best"]["miou"] == max(r["miou"] for r in res["rows"])
    assert (out / "crf_grid.png").exists() and (out / "crf_grid.csv").read_text().count("\n") == 5
    cached = sorted(f for f in os.listdir(out / "cache") if f != "features")   # MatWrite's
    assert cached == ["manifest.json", "val_000000.npz", "val_000001.npz"]
    conf = 0
    for name in cached[1:]:
        with np.load(out / "cache" / name) as z:
            assert z["scores"].dtype == np.float16 and z["scores"].shape[0] == 3
            assert z["image"].shape == z["label"].shape + (3,)
            conf = conf + confusion_matrix(z["scores"].astype(np.float32).argmax(0), z["label"], 3)
    assert res["net_miou"] == pytest.approx(scores(conf)["miou"], abs=1e-12)
    capsys.readouterr()
    assert g.main(args) == 0                         # second run: the cache is reused
    assert "reusing the scores of 2 images" in capsys.readouterr().out
    assert json.loads((out / "crf_grid.json").read_text())["rows"] == res["rows"]


def test_run_test_after_a_forward_and_image_hook(setup):
    """run_test tracks the list entries even when the net already ran; the hook's image is the
    8-bit image the net saw (the data blob plus the mean)."""
    from deeplab_caffe.eval.testing import run_test
    tmp, protos, weights = setup
    voc = str(tmp / "voc")
    net = dc.Net(str(protos["pixel"]), weights=str(weights),
                 defines={"ROOT": voc, "FEATURE_DIR": str(tmp / "feat2")})
    net.forward()                                  # consumes entry 0
    seen = []
    res = run_test(net, 3, iterations=2, progress=False,
                   on_image=lambda i, o: seen.append((i, o["image"], o["label"])))
    assert [s[0] for s in seen] == ["val_000001", "val_000002"] and res.images == 2
    for image_id, img, label in seen:
        rgb = np.asarray(Image.open(os.path.join(voc, "JPEGImages", image_id + ".jpg")))
        h, w = label.shape
        y0, x0 = max(rgb.shape[0] - CROP, 0) // 2, max(rgb.shape[1] - CROP, 0) // 2
        np.testing.assert_array_equal(img[:, :, ::-1], rgb[y0:y0 + h, x0:x0 + w])
