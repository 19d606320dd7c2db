"""The shipped model zoo (prototxt/): every file parses, upgrades and builds, and says what the
DeepLab v1 facts say (pooling layouts, holes, fc6 per variant, multipliers, data, test paths,
solvers), with the blob shapes and parameter counts of the paper (Table 2).

Full-size nets are built on the "meta" device (shapes and parameter counts, no memory); the
forwards are in test_model_zoo_forward.py, the engine comparison in test_engine.py.
"""
import math
import os
import re

import pytest

from deeplab_caffe.errors import PrototxtError
from deeplab_caffe.layers.base import get_layer_class
from deeplab_caffe.proto import parse_file, parse_net
from deeplab_caffe.solver.spec import load_solver
from zoo_util import (BRANCHES, CONVS, DL_POOLS, EXP, NET_FILES, V,  # noqa: F401
                      VGG_WIDTHS, ZOO, build, by_name, conv, defines, mults, path, voc_dir)


def test_every_variant_ships_its_files():
    for v in V:
        for f in NET_FILES + ("solver.prototxt", "solver2.prototxt"):
            assert os.path.isfile(path(v, f)), f"missing {v}/{f}"
    for f in NET_FILES + ("solver.prototxt",):
        assert os.path.isfile(path("demo", f)), f"missing demo/{f}"


@pytest.mark.parametrize("variant", list(V) + ["demo"])
def test_files_parse_in_deeplab_v1_syntax_and_upgrade(variant, defines):
    for f in NET_FILES:
        text = open(path(variant, f)).read()
        assert re.search(r"^layers \{", text, re.M) and not re.search(r"^layer \{", text, re.M)
        spec = parse_net(path(variant, f), defines=defines)
        assert spec.dialect == "deeplab_v1"
        for layer in spec.layers:       # upgraded to V2 type names that the registry knows
            get_layer_class(layer.type, layer)
        with pytest.raises(PrototxtError, match="NUM_LABELS"):
            parse_net(path(variant, f), defines={k: v for k, v in defines.items()
                                                 if k != "NUM_LABELS"})
    for f in ("solver.prototxt", "solver2.prototxt") if variant != "demo" else ("solver.prototxt",):
        for schema in ("deeplab_v1", "bvlc"):
            parse_file(path(variant, f), "SolverParameter", schema=schema, defines=defines)


@pytest.mark.parametrize("variant", list(V))
@pytest.mark.parametrize("stage", [1, 2])
def test_solvers(variant, stage, defines):
    s = parse_file(path(variant, "solver.prototxt" if stage == 1 else "solver2.prototxt"),
                   "SolverParameter", schema="deeplab_v1", defines=defines)
    base_lr, stepsize, max_iter = (0.001, 2000, 6000) if stage == 1 else (0.001, 2000, 8000)
    if variant == "DeepLab" and stage == 2:
        base_lr, stepsize, max_iter = 0.01, 3000, 12000
    assert (s.get("lr_policy"), s.get("gamma"), s.get("stepsize")) == ("step", 0.1, stepsize)
    assert (s.get("base_lr"), s.get("max_iter")) == (base_lr, max_iter)
    assert (s.get("momentum"), s.get("weight_decay")) == (0.9, 0.0005)
    assert (s.get("snapshot"), s.get("display"), s.get("solver_mode")) == (2000, 10, "GPU")
    assert s.get("average_loss", 1) == (10 if variant == "DeepLab-MSc-LargeFOV" else 1)
    assert s.get("net") == f"{EXP}/config/zoo/train.prototxt"
    assert s.get("snapshot_prefix") == f"{EXP}/model/zoo/" + ("train" if stage == 1 else "train2")
    spec = load_solver(path(variant, "solver.prototxt" if stage == 1 else "solver2.prototxt"),
                       defines=defines)
    assert spec.train_net.source == f"{EXP}/config/zoo/train.prototxt" and not spec.test_nets


@pytest.mark.parametrize("variant", list(V))
@pytest.mark.parametrize("fname", NET_FILES)
def test_backbone_and_head(variant, fname, defines):
    v, train = V[variant], fname == "train.prototxt"
    L = by_name(parse_net(path(variant, fname), defines=defines))
    for name in CONVS:
        block = int(name[4])
        hole = 2 if block == 5 else 1
        assert conv(L[name]) == (VGG_WIDTHS[block], 3, hole, hole, 1), name
        assert L[f"relu{name[4:]}"].bottom == L[f"relu{name[4:]}"].top == [name]
        if train:
            lr, dw, db = v["mult"]
            assert mults(L[name]) == [(lr, dw), (2 * lr, db)], name
    for i, (k, s, p) in enumerate(v["pools"], 1):
        if i == 4 and not train and v["pools"] is DL_POOLS:
            p = 1                   # the DeepLab test nets pad pool4: 514 -> 67
        pp = L[f"pool{i}"].message.get("pooling_param")
        assert (pp.get("pool"), pp.get("kernel_size"), pp.get("stride"), pp.get("pad", 0)) == \
            ("MAX", k, s, p), f"pool{i}"
    assert ("pool5a" in L) == v["pool5a"]
    if v["pool5a"]:
        pp = L["pool5a"].message.get("pooling_param")
        assert (pp.get("pool"), pp.get("kernel_size"), pp.get("stride"), pp.get("pad")) == \
            ("AVE", 3, 1, 1)
        assert L["fc6"].bottom == ["pool5a"]
    k, hole, pad, ch = v["fc6"]
    assert conv(L["fc6"]) == (ch, k, hole, pad, 1)
    assert hole * (k - 1) + 1 - 2 * pad == 1            # fc6 keeps the spatial size
    assert conv(L["fc7"]) == (v["fc7"], 1, 1, 0, 1)
    assert conv(L[v["fc8"]]) == (21, 1, 1, 0, 1) and L[v["fc8"]].bottom == ["fc7"]
    for d in ("drop6", "drop7"):
        assert L[d].message.get("dropout_param").get("dropout_ratio") == 0.5
    strict = v["strict_train"] or not train
    for name in ("fc6", "fc7", v["fc8"]):
        assert L[name].strict_dim is (not strict), name
    if train:
        lr, dw, db = v["mult"]
        assert mults(L["fc6"]) == mults(L["fc7"]) == [(lr, dw), (2 * lr, db)]
        lr8, dw8, db8 = v["mult8"]
        assert mults(L[v["fc8"]]) == [(lr8, dw8), (2 * lr8, db8)]
        cp = L[v["fc8"]].message.get("convolution_param")
        assert (cp.get("weight_filler").get("type"), cp.get("weight_filler").get("std")) == \
            ("gaussian", 0.01)


@pytest.mark.parametrize("variant", list(V))
@pytest.mark.parametrize("fname", NET_FILES)
def test_data_layer(variant, fname, defines):
    v, train = V[variant], fname == "train.prototxt"
    data = parse_net(path(variant, fname), defines=defines).layers[0]
    assert data.type == "ImageSegData" and data.name == "data"
    ip, tp = data.message.get("image_data_param"), data.message.get("transform_param")
    assert ip.get("root_folder") == defines["DATA_ROOT"]
    assert ip.get("source") == f"{EXP}/list/" + ("train_aug.txt" if train else "val.txt")
    assert ip.get("label_type") == ("PIXEL" if train else "NONE")
    assert ip.get("batch_size") == (v["batch"] if train else 1)
    assert ip.get("shuffle", False) is train
    assert tp.get("mean_value") == [104.008, 116.669, 122.675]
    assert tp.get("crop_size") == v["crop"][0 if train else 1]
    assert tp.get("mirror") is train
    tops = ["data", "label"] + (["data_dim"] if fname == "test_crf.prototxt" else [])
    assert data.top == tops


@pytest.mark.parametrize("variant", list(V))
def test_train_loss_and_accuracy(variant, defines):
    v = V[variant]
    L = by_name(parse_net(path(variant, "train.prototxt"), defines=defines))
    score = "fc_fusion" if v["msc"] else v["fc8"]
    ip = L["label_shrink"].message.get("interp_param")
    assert L["label_shrink"].type == "Interp" and L["label_shrink"].bottom == ["label"]
    assert (ip.get("shrink_factor"), ip.get("pad_beg", 0), ip.get("pad_end", 0)) == \
        (8, v["shrink_pad"], 0)
    loss = L["loss"]
    assert loss.type == "SoftmaxWithLoss" and loss.bottom == [score, "label_shrink"]
    assert loss.message.get("softmaxloss_param").get("ignore_label") == [255]
    assert [r.get("phase") for r in loss.include] == ["TRAIN"]
    acc = L["accuracy"]
    assert acc.type == "SegAccuracy" and acc.bottom == [score, "label_shrink"] and not acc.include
    assert acc.message.get("seg_accuracy_param").fields == {"ignore_label": [255]}   # no `reset`


@pytest.mark.parametrize("variant", list(V))
@pytest.mark.parametrize("fname", ["test.prototxt", "test_crf.prototxt"])
def test_test_path(variant, fname, defines):
    v = V[variant]
    L = by_name(parse_net(path(variant, fname), defines=defines))
    assert L["fc8_interp"].bottom == [v["fc8"]]
    assert L["fc8_interp"].message.get("interp_param").get("zoom_factor") == 8
    score = "fc_fusion" if v["msc"] else "fc8_interp"
    if v["crop"][1] == 514:
        pp = L["fc8_crop"].message.get("padding_param")
        assert L["fc8_crop"].type == "Padding" and L["fc8_crop"].bottom == ["fc8_interp"]
        assert (pp.get("pad_beg"), pp.get("pad_end")) == (-7, -8)
        score = "fc8_crop"
    mw = L["fc8_mat"]
    assert mw.type == "MatWrite" and mw.bottom == [score]
    assert mw.message.get("mat_write_param").get("prefix") == defines["FEATURE_DIR"] + "/val/fc8/"
    assert mw.message.get("mat_write_param").get("source") == f"{EXP}/list/val_id.txt"
    assert L["silence"].type == "Silence" and L["silence"].bottom == ["label"]
    crfs = [layer for layer in L.values() if layer.type == "DenseCRF"]
    if fname == "test.prototxt":
        assert not crfs and "loss" not in L
        return
    assert len(crfs) == 1 and crfs[0].bottom == [score, "data_dim", "data"]
    p = crfs[0].message.get("dense_crf_param")
    bw, bxy, brgb = v["crf"]
    assert (p.get("max_iter"), p.get("pos_w"), p.get("pos_xy_std")) == (10, [3.0], [3.0])
    assert (p.get("bi_w"), p.get("bi_xy_std"), p.get("bi_rgb_std")) == ([bw], [bxy], [brgb])


@pytest.mark.parametrize("variant", ["DeepLab-MSc", "DeepLab-MSc-LargeFOV"])
@pytest.mark.parametrize("fname", NET_FILES)
def test_msc_branches(variant, fname, defines):
    v, train = V[variant], fname == "train.prototxt"
    L = by_name(parse_net(path(variant, fname), defines=defines))
    fused = []
    for src, stride, zoom in BRANCHES:
        c, fc, ms = L[f"{src}_conv"], L[f"{src}_fc"], L[f"{src}_ms"]
        assert c.bottom == [src] and fc.bottom == [f"{src}_conv"] and ms.bottom == [f"{src}_fc"]
        assert conv(c) == (128, 3, 1, 1, stride if train else 1)
        assert conv(fc) == (128, 1, 1, 0, 1) and conv(ms) == (21, 1, 1, 0, 1)
        out = f"{src}_ms"
        if not train and zoom > 1:
            out = f"{src}_ms_interp"
            assert L[out].bottom == [f"{src}_ms"]
            assert L[out].message.get("interp_param").get("zoom_factor") == zoom
        fused.append(out)
        if train:
            for layer, std in ((c, 0.001), (fc, 0.005 if src == "pool4" else 0.001), (ms, 0.01)):
                assert mults(layer) == [(1, 1), (2, 0)], layer.name
                wf = layer.message.get("convolution_param").get("weight_filler")
                assert (wf.get("type"), wf.get("std")) == ("gaussian", std), layer.name
    fused.append(v["fc8"] if train else "fc8_interp")
    fusion = L["fc_fusion"]
    assert fusion.type == "Eltwise" and fusion.bottom == fused
    assert fusion.message.get("eltwise_param").get("operation") == "SUM"


@pytest.mark.parametrize("variant", list(V))
def test_builds_with_paper_shapes_and_parameter_counts(variant, defines):
    v = V[variant]
    train_size, test_size = v["crop"]
    s_train, s_test = v["scores"]
    n = 21
    counts = set()
    for fname in NET_FILES:
        for phase in ("TRAIN", "TEST"):
            net = build(variant, fname, phase, defines)
            sh = net.blob_shapes
            counts.add(sum(p.numel() for ps in net.params.values() for p in ps))
            if fname == "train.prototxt":
                assert sh[v["fc8"]] == (v["batch"], n, s_train, s_train)
                assert sh["label_shrink"] == (v["batch"], 1, s_train, s_train)
                assert ("loss" in net.layer_names) == (phase == "TRAIN")
                if v["msc"]:
                    for src, _, _ in BRANCHES:
                        assert sh[f"{src}_ms"] == (v["batch"], n, s_train, s_train), src
                    assert sh["fc_fusion"] == (v["batch"], n, s_train, s_train)
                continue
            assert sh[v["fc8"]] == (1, n, s_test, s_test)
            assert sh["fc8_interp"] == (1, n, 8 * s_test - 7, 8 * s_test - 7)
            final = "fc_fusion" if v["msc"] else ("fc8_crop" if test_size == 514 else "fc8_interp")
            assert sh[final] == (1, n, test_size, test_size)
            if fname == "test_crf.prototxt":
                assert sh["crf_inf"] == (1, n, test_size, test_size)
    assert len(counts) == 1     # train and test nets hold the same blobs
    if v["params"] is not None:
        assert round(counts.pop() / 1e6, 1) == v["params"]


def test_caffe_pooling_sizes(defines):
    net = build("DeepLab-LargeFOV", "train.prototxt", "TRAIN", defines)
    assert [net.blob_shapes[f"pool{i}"][-1] for i in range(1, 6)] == [161, 81, 41, 41, 41]
    net = build("DeepLab-LargeFOV", "test.prototxt", "TEST", defines)
    assert [net.blob_shapes[f"pool{i}"][-1] for i in range(1, 6)] == [257, 129, 65, 65, 65]
    net = build("DeepLab", "train.prototxt", "TRAIN", defines)
    assert [net.blob_shapes[f"pool{i}"][-1] for i in range(1, 6)] == [154, 78, 40, 39, 39]
    net = build("DeepLab", "test.prototxt", "TEST", defines)
    assert [net.blob_shapes[f"pool{i}"][-1] for i in range(1, 6)] == [258, 130, 66, 67, 67]


def test_demo_net_layout(defines, monkeypatch):
    lf = by_name(parse_net(path("DeepLab-LargeFOV", "train.prototxt"), defines=defines))
    spec = parse_net(path("demo", "train.prototxt"), defines=defines)
    L = by_name(spec)
    for i in range(1, 6):
        assert L[f"pool{i}"].message.get("pooling_param").fields == \
            lf[f"pool{i}"].message.get("pooling_param").fields
    # LargeFOV's stages at one conv each, reduced widths
    demo_convs = [f"conv{b}_1" for b in range(1, 6)]
    assert sorted(n for n, layer in L.items() if n.startswith("conv")) == demo_convs
    widths = {1: 16, 2: 32, 3: 64, 4: 64, 5: 64}
    for name in demo_convs:
        block = int(name[4])
        hole = 2 if block == 5 else 1
        assert conv(L[name]) == (widths[block], 3, hole, hole, 1), name
    assert conv(L["fc6"])[1:] == (3, 12, 12, 1) and L["fc6"].bottom == ["pool5a"]
    data = [layer for layer in spec.layers if layer.name == "data"]
    assert len(data) == 2                       # the TRAIN net's and the solver's test net's
    for layer in data:
        crop = layer.message.get("transform_param").get("crop_size")
        assert (crop + 31) % 32 == 0            # LargeFOV's n = 32k - 31
    # trains from scratch: every weight has a filler; msra after a ReLU, conv1_1 scaled to
    # 8-bit input (std ~60), fc8 a small gaussian
    for layer in L.values():
        if layer.type == "Convolution":
            wf = layer.message.get("convolution_param").get("weight_filler")
            if layer.name == "conv1_1":
                assert wf.get("type") == "gaussian"
                assert wf.get("std") == pytest.approx(math.sqrt(2 / 27) / 60, rel=1e-3)
            elif layer.name == "fc8_demo":
                assert wf.get("type") == "gaussian" and wf.get("std") == pytest.approx(0.01)
            else:
                assert wf is not None and wf.get("type") == "msra", layer.name
    s = parse_file(path("demo", "solver.prototxt"), "SolverParameter", schema="deeplab_v1",
                   defines=defines)
    assert s.get("solver_mode") == "CPU" and s.get("max_iter") <= 1000
    assert s.get("lr_policy") == "poly" and s.getlist("test_iter") and s.get("test_interval")
    assert s.get("snapshot_prefix").startswith(EXP + "/")
    for fname in NET_FILES:
        for phase in ("TRAIN", "TEST"):
            assert build("demo", fname, phase, defines).blob_shapes["fc8_demo"][1:] == \
                ((21, 9, 9) if fname == "train.prototxt" else (21, 17, 17))
    monkeypatch.chdir(os.path.join(ZOO, ".."))  # Caffe's habit: net paths from the repo root
    spec = load_solver(path("demo", "solver.prototxt"), defines=defines)
    assert os.path.samefile(spec.train_net.source, path("demo", "train.prototxt"))
