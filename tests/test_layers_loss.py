"""Softmax, SoftmaxWithLoss (BVLC and DeepLab v1), EuclideanLoss, Accuracy and SegAccuracy
against per-position loop references written from Caffe's rules."""
import math

import numpy as np
import pytest
import torch

from layer_util import build, expect_net_error

FLT_MIN = float(np.finfo(np.float32).tiny)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def naive_softmax_loss(scores, label, ignore=(), weights=None, normalization="VALID"):
    """Loop over (n, h, w): returns (loss, gradient wrt scores), both float64 numpy."""
    s = scores.detach().numpy()
    lab = label.reshape(s.shape[0], -1).numpy().astype(np.int64)
    N, C = s.shape[:2]
    flat = s.reshape(N, C, -1)
    grad = np.zeros_like(flat)
    loss, wsum, valid = 0.0, 0.0, 0
    for n in range(N):
        for j in range(flat.shape[2]):
            y = lab[n, j]
            if y in ignore:
                continue
            e = np.exp(flat[n, :, j] - flat[n, :, j].max())
            p = e / e.sum()
            w = 1.0 if weights is None else weights[y]
            loss -= w * math.log(max(p[y], FLT_MIN))
            wsum += w
            valid += 1
            grad[n, :, j] = w * p
            grad[n, y, j] -= w
    if weights is not None:
        norm = wsum
    else:
        norm = {"FULL": lab.size, "VALID": valid if ignore else lab.size, "BATCH_SIZE": N,
                "NONE": 1}[normalization]
        norm = max(1.0, norm)
    return loss / norm, (grad / norm).reshape(s.shape)


def scores_and_labels(shape, C_ignore=(255,), seed=0, frac_ignore=0.2):
    g = gen(seed)
    scores = torch.randn(shape, dtype=torch.float64, generator=g) * 3
    N, C, H, W = shape
    label = torch.randint(0, C, (N, 1, H, W), generator=g).double()
    drop = torch.rand(N, 1, H, W, generator=g) < frac_ignore
    for i, v in enumerate(C_ignore):
        label[drop & (torch.rand(N, 1, H, W, generator=g) < 1.0 / (i + 1))] = v
    return scores, label


# -- Softmax ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [1, -1, 0])
def test_softmax_matches_exp_over_sum(axis):
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=gen(1), requires_grad=True)
    layer, shapes = build("Softmax", {"softmax_param": {"axis": axis}}, [x.shape])
    assert shapes == [tuple(x.shape)]
    e = torch.exp(x.detach())
    torch.testing.assert_close(layer(x)[0], e / e.sum(axis, keepdim=True), rtol=1e-14,
                               atol=1e-15)
    assert torch.autograd.gradcheck(lambda t: layer(t)[0], (x,))


# -- SoftmaxWithLoss -------------------------------------------------------------------------------
@pytest.mark.parametrize("normalization", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
def test_softmax_loss_bvlc_normalizations(normalization):
    scores, label = scores_and_labels((2, 4, 3, 5), seed=2)
    scores.requires_grad_()
    layer, shapes = build("SoftmaxWithLoss", {"loss_param": {"ignore_label": 255,
                                                             "normalization": normalization}},
                          [scores.shape, label.shape], top=("loss",))
    assert shapes == [()]
    loss = layer(scores, label)[0]
    ref, ref_grad = naive_softmax_loss(scores, label, {255}, normalization=normalization)
    assert loss.shape == () and abs(loss.item() - ref) < 1e-13
    loss.backward()
    np.testing.assert_allclose(scores.grad.numpy(), ref_grad, rtol=1e-12, atol=1e-15)


def test_softmax_loss_deprecated_normalize_and_no_ignore():
    scores, label = scores_and_labels((3, 3, 2, 2), C_ignore=(), seed=3)
    for normalize, mode in ((False, "BATCH_SIZE"), (True, "VALID")):
        layer, _ = build("SoftmaxWithLoss", {"loss_param": {"normalize": normalize}},
                         [scores.shape, label.shape])
        ref, _ = naive_softmax_loss(scores, label, (), normalization=mode)
        assert abs(layer(scores, label)[0].item() - ref) < 1e-13
    # No loss_param at all: VALID without ignore_label = every position.
    layer, _ = build("SoftmaxWithLoss", {}, [scores.shape, label.shape])
    assert abs(layer(scores, label)[0].item() - naive_softmax_loss(scores, label)[0]) < 1e-13


def test_softmax_loss_deeplab_weights_and_multiple_ignore_labels(tmp_path):
    scores, label = scores_and_labels((2, 4, 5, 3), C_ignore=(255, 3), seed=4)
    weights = [0.5, 2.0, 1.0, 3.0]
    wfile = tmp_path / "w.txt"
    wfile.write_text("0.5\n2\n1.0\n  3e0\n")
    scores.requires_grad_()
    params = {"softmaxloss_param": {"ignore_label": [255, 3], "weight_source": str(wfile)}}
    layer, shapes = build("SoftmaxWithLoss", params, [scores.shape, label.shape],
                          top=("loss", "prob"))
    assert shapes == [(), tuple(scores.shape)]
    loss, prob = layer(scores, label)
    ref, ref_grad = naive_softmax_loss(scores, label, {255, 3}, weights=weights)
    assert abs(loss.item() - ref) < 1e-13
    torch.testing.assert_close(prob, torch.softmax(scores, 1))
    loss.backward()
    np.testing.assert_allclose(scores.grad.numpy(), ref_grad, rtol=1e-12, atol=1e-15)
    ignored = ((label == 255) | (label == 3)).expand_as(scores)
    assert ignored.any() and bool((scores.grad[ignored] == 0).all())


def test_softmax_loss_gradcheck_and_float32():
    scores, label = scores_and_labels((1, 3, 2, 3), seed=5)
    scores.requires_grad_()
    layer, _ = build("SoftmaxWithLoss", {"softmaxloss_param": {"ignore_label": [255]}},
                     [scores.shape, label.shape])
    assert torch.autograd.gradcheck(lambda s: layer(s, label)[0], (scores,))
    # float32 scores and an N x H x W label give the same loss.
    l32 = layer(scores.detach().float(), label[:, 0].float())[0]
    assert l32.dtype == torch.float32
    assert abs(l32.item() - layer(scores, label)[0].item()) < 1e-5


def test_softmax_loss_flt_min_clamp_keeps_caffe_gradient():
    scores = torch.tensor([[0.0, 200.0]], dtype=torch.float64, requires_grad=True)
    label = torch.tensor([[0.0]])
    layer, _ = build("SoftmaxWithLoss", {}, [(1, 2), (1, 1)])
    loss = layer(scores, label)[0]
    assert abs(loss.item() + math.log(FLT_MIN)) < 1e-12      # -log(FLT_MIN), not 200
    loss.backward()
    torch.testing.assert_close(scores.grad, torch.tensor([[-1.0, 1.0]], dtype=torch.float64))


def test_softmax_loss_errors(tmp_path):
    scores, label = scores_and_labels((1, 3, 2, 2), C_ignore=(), seed=6)
    layer, _ = build("SoftmaxWithLoss", {"softmaxloss_param": {"ignore_label": [255]}},
                     [scores.shape, label.shape], name="loss")
    bad = label.clone()
    bad[0, 0, 1, 1] = 7
    expect_net_error(lambda: layer(scores, bad), "unexpected label 7", layer="loss")
    expect_net_error(lambda: build("SoftmaxWithLoss", {}, [(1, 3, 2, 2), (1, 1, 2, 3)]),
                     "label shape")
    wfile = tmp_path / "w.txt"
    wfile.write_text("1 2\n")
    expect_net_error(lambda: build("SoftmaxWithLoss", {"softmaxloss_param": {
        "weight_source": str(wfile)}}, [(1, 3, 2, 2), (1, 1, 2, 2)]), "2 weights for 3")
    wfile.write_text("1 -2 1\n")
    expect_net_error(lambda: build("SoftmaxWithLoss", {"softmaxloss_param": {
        "weight_source": str(wfile)}}, [(1, 3, 2, 2), (1, 1, 2, 2)]), "negative")
    expect_net_error(lambda: build("SoftmaxWithLoss", {"softmaxloss_param": {
        "weight_source": str(tmp_path / "nope.txt")}}, [(1, 3, 2, 2), (1, 1, 2, 2)]),
        "nope.txt")


# -- EuclideanLoss ---------------------------------------------------------------------------------
def test_euclidean_loss():
    a = torch.randn(3, 2, 2, dtype=torch.float64, generator=gen(7), requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, generator=gen(8), requires_grad=True)
    layer, shapes = build("EuclideanLoss", {}, [a.shape, b.shape])
    assert shapes == [()]
    ref = sum((x - y) ** 2 for x, y in zip(a.detach().flatten().tolist(),
                                           b.detach().flatten().tolist())) / 6.0
    assert abs(layer(a, b)[0].item() - ref) < 1e-13
    assert torch.autograd.gradcheck(lambda x, y: layer(x, y)[0], (a, b))
    expect_net_error(lambda: build("EuclideanLoss", {}, [(3, 4), (3, 5)]), "same size")


# -- Accuracy --------------------------------------------------------------------------------------
def naive_accuracy(scores, label, top_k, ignore=None):
    s = scores.numpy()
    N, C = s.shape[:2]
    flat = s.reshape(N, C, -1)
    lab = label.reshape(N, -1).numpy().astype(int)
    ok, cnt = 0, 0
    per_ok, per_n = np.zeros(C), np.zeros(C)
    for n in range(N):
        for j in range(flat.shape[2]):
            y = lab[n, j]
            if ignore is not None and y == ignore:
                continue
            better = sum(1 for c in range(C) if flat[n, c, j] >= flat[n, y, j]) - 1
            cnt += 1
            per_n[y] += 1
            if better < top_k:
                ok += 1
                per_ok[y] += 1
    per = np.where(per_n > 0, per_ok / np.maximum(per_n, 1), 0)
    return (ok / cnt if cnt else 0.0), per


@pytest.mark.parametrize("top_k", [1, 2])
def test_accuracy_top_k_with_ties_and_ignore(top_k):
    g = gen(9)
    scores = torch.randint(0, 3, (3, 4, 2, 3), generator=g).double()      # many ties
    label = torch.randint(0, 4, (3, 1, 2, 3), generator=g).double()
    label[0, 0, 0, :] = -1
    layer, shapes = build("Accuracy", {"accuracy_param": {"top_k": top_k, "ignore_label": -1}},
                          [scores.shape, label.shape], top=("acc", "per_class"))
    assert shapes == [(), (4,)]
    acc, per = layer(scores, label)
    ref, ref_per = naive_accuracy(scores, label, top_k, ignore=-1)
    assert abs(acc.item() - ref) < 1e-15
    np.testing.assert_allclose(per.numpy(), ref_per, rtol=1e-15)


def test_accuracy_errors():
    expect_net_error(lambda: build("Accuracy", {"accuracy_param": {"top_k": 5}},
                                   [(2, 4), (2,)]), "top_k")
    layer, _ = build("Accuracy", {}, [(2, 4), (2,)])
    expect_net_error(lambda: layer(torch.zeros(2, 4), torch.tensor([1.0, 4.0])), "label 4")


# -- SegAccuracy -----------------------------------------------------------------------------------
def naive_seg_accuracy(scores, label, ignore):
    s = scores.numpy()
    N, C, H, W = s.shape
    conf = np.zeros((C, C))
    for n in range(N):
        for h in range(H):
            for w in range(W):
                y = int(label[n, 0, h, w])
                if y in ignore:
                    continue
                col = s[n, :, h, w]
                pred = max(range(C), key=lambda c: (col[c], c))     # ties: highest class
                conf[y, pred] += 1
    pixel = np.trace(conf) / conf.sum()
    recalls = [conf[c, c] / conf[c].sum() for c in range(C) if conf[c].sum() > 0]
    ious = []
    for c in range(C):
        union = conf[c].sum() + conf[:, c].sum() - conf[c, c]
        ious.append(1.0 if union == conf[c, c] else conf[c, c] / union)
    return [pixel, sum(recalls) / len(recalls), sum(ious) / C]


def test_seg_accuracy_matches_confusion_matrix():
    g = gen(10)
    scores = torch.randint(0, 3, (2, 5, 6, 7), generator=g).float()      # ties included
    label = torch.randint(0, 4, (2, 1, 6, 7), generator=g).float()       # class 4 never labelled
    label[0, 0, :2] = 255
    label[1, 0, 0, :3] = 254
    layer, shapes = build("SegAccuracy", {"seg_accuracy_param": {"ignore_label": [255, 254]}},
                          [scores.shape, label.shape], top=("accuracy",))
    assert shapes == [(1, 1, 1, 3)]
    out = layer(scores, label)[0]
    assert out.shape == (1, 1, 1, 3) and out.dtype == torch.float32
    np.testing.assert_allclose(out.flatten().numpy(), naive_seg_accuracy(scores, label,
                                                                         {255, 254}), rtol=1e-6)


def test_seg_accuracy_perfect_and_errors():
    label = torch.tensor([0.0, 1, 1, 2]).reshape(1, 1, 2, 2)
    scores = torch.nn.functional.one_hot(label[:, 0].long(), 4).permute(0, 3, 1, 2).double()
    layer, _ = build("SegAccuracy", {}, [scores.shape, label.shape])
    assert layer(scores, label)[0].flatten().tolist() == [1.0, 1.0, 1.0]
    expect_net_error(lambda: layer(scores, label + 3), "unexpected label")
    expect_net_error(lambda: build("SegAccuracy", {}, [(1, 4, 2, 2), (1, 1, 2, 3)]),
                     "label shape")


def test_seg_accuracy_all_ignored_gives_zero_pixel_accuracy():
    # DeepLab's ConfusionMatrix::accuracy returns 0 for an empty matrix; every class then has
    # union == intersection (IoU 1) and none is present (mean recall 0).
    scores = torch.randn(1, 3, 2, 2, generator=gen(3))
    label = torch.full((1, 1, 2, 2), 255.0)
    layer, _ = build("SegAccuracy", {"seg_accuracy_param": {"ignore_label": [255]}},
                     [scores.shape, label.shape])
    assert layer(scores, label)[0].flatten().tolist() == [0.0, 0.0, 1.0]


def test_softmax_loss_axis_last():
    scores, label = scores_and_labels((2, 4, 3, 5), seed=11)
    moved = scores.permute(0, 2, 3, 1).contiguous()           # (N, H, W, C), softmax on axis -1
    layer, _ = build("SoftmaxWithLoss", {"softmax_param": {"axis": -1},
                                         "loss_param": {"ignore_label": 255}},
                     [moved.shape, label.shape])
    ref, _ = naive_softmax_loss(scores, label, {255})
    assert abs(layer(moved, label)[0].item() - ref) < 1e-13
