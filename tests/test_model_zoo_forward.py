"""Forwards of the shipped model zoo on the CPU: narrowed copies of the real files (every
num_output / 32: same spatial path), one full-size DeepLab-LargeFOV TEST forward at 513x513 (the
issue's "done when"), and the demo nets as they ship."""
import math
import os

import numpy as np
import pytest
import torch

from deeplab_caffe import Net
from deeplab_caffe.io.matfile import read_blob_mat
from zoo_util import BRANCHES, defines, narrowed, path, voc_dir  # noqa: F401


def test_deeplab_514_test_path_forward(defines):
    torch.manual_seed(0)
    net = Net(narrowed("DeepLab", "test_crf.prototxt"), phase="TEST", defines=defines)
    with torch.no_grad():
        net.forward()
    b = net.blobs
    assert tuple(b["fc8_pascal"].shape) == (1, 21, 67, 67)
    assert tuple(b["fc8_interp"].shape) == (1, 21, 529, 529)
    assert tuple(b["fc8_crop"].shape) == (1, 21, 514, 514)
    assert torch.equal(b["fc8_crop"], b["fc8_interp"][:, :, 7:521, 7:521])
    assert tuple(b["crf_inf"].shape) == (1, 21, 514, 514)
    assert b["data_dim"].flatten().tolist() == [64, 64]
    inside = b["crf_inf"][0, :, :64, :64].sum(0)
    assert torch.allclose(inside, torch.ones_like(inside), atol=1e-4)
    assert b["crf_inf"][0, :, 64:, :].abs().max() == 0
    for sub in ("fc8", "crf"):
        saved = read_blob_mat(os.path.join(defines["FEATURE_DIR"], "val", sub,
                                           "val_000000_blob_0.mat"))
        assert saved.shape == (1, 21, 514, 514)


@pytest.mark.parametrize("variant", ["DeepLab-MSc", "DeepLab-MSc-LargeFOV"])
def test_msc_forward_all_branches_at_the_score_grid(variant, defines):
    torch.manual_seed(0)
    net = Net(narrowed(variant, "train.prototxt", batch=2), phase="TRAIN", defines=defines)
    net.forward()
    for src, _, _ in BRANCHES:
        assert tuple(net.blobs[f"{src}_ms"].shape) == (2, 21, 41, 41), src
    assert torch.isfinite(net.loss) and net.loss > 0
    net = Net(narrowed(variant, "test.prototxt"), phase="TEST", defines=defines)
    with torch.no_grad():
        net.forward()
    assert tuple(net.blobs["fc_fusion"].shape) == (1, 21, 513, 513)
    for src, _, zoom in BRANCHES[1:]:
        assert tuple(net.blobs[f"{src}_ms_interp"].shape) == (1, 21, 513, 513), src


def test_largefov_full_size_513_forward(defines):
    """The issue's "done when": the real DeepLab-LargeFOV test net on a 513x513 input."""
    torch.manual_seed(0)
    net = Net(path("DeepLab-LargeFOV", "test.prototxt"), phase="TEST", defines=defines)
    with torch.no_grad():
        net.forward()
    assert tuple(net.blobs["data"].shape) == (1, 3, 513, 513)
    assert tuple(net.blobs["fc8_voc12"].shape) == (1, 21, 65, 65)
    assert tuple(net.blobs["fc8_interp"].shape) == (1, 21, 513, 513)
    saved = read_blob_mat(os.path.join(defines["FEATURE_DIR"], "val", "fc8",
                                       "val_000000_blob_0.mat"))
    assert saved.shape == (1, 21, 513, 513)
    assert np.array_equal(saved, net.blobs["fc8_interp"].numpy())


def test_demo_trains_every_layer(defines):
    torch.manual_seed(0)
    net = Net(path("demo", "train.prototxt"), phase="TRAIN", defines=defines)
    net.forward()
    assert tuple(net.blobs["fc8_demo"].shape) == (10, 21, 9, 9)
    assert abs(net.loss.item() - math.log(21)) < 0.5    # small fc8 filler: near-uniform scores
    net.loss.backward()
    for name, blobs in net.params.items():
        for i, p in enumerate(blobs):
            if i == 0:      # every weight learns from the first step (no dead filler)
                assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_demo_test_nets_forward(defines):
    torch.manual_seed(0)
    for fname in ("test.prototxt", "test_crf.prototxt"):
        net = Net(path("demo", fname), phase="TEST", defines=defines)
        with torch.no_grad():
            net.forward()
        assert tuple(net.blobs["fc8_demo"].shape) == (1, 21, 17, 17)
        assert tuple(net.blobs["fc8_interp"].shape) == (1, 21, 129, 129)
    crf = net.blobs["crf_inf"]
    assert tuple(crf.shape) == (1, 21, 129, 129)
    assert torch.allclose(crf[0, :, :64, :64].sum(0), torch.ones(64, 64), atol=1e-4)
