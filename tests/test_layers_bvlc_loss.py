"""BVLC master's ContrastiveLoss, HingeLoss, InfogainLoss, MultinomialLogisticLoss and
SigmoidCrossEntropyLoss against naive loop references written from the C++ (forward and Caffe's
own backward formulas), and float64 gradcheck away from the kinks."""
import math

import numpy as np
import pytest
import torch

from deeplab_caffe.errors import NetError
from deeplab_caffe.layers.base import get_layer_class
from layer_util import build, expect_net_error


def rand(*shape, seed=0):
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def grad_of(layer, bottoms, index=0, weight=1.0):
    xs = [b.clone().requires_grad_(i == index) for i, b in enumerate(bottoms)]
    (layer(*xs)[0] * weight).backward()
    return xs[index].grad


@pytest.mark.parametrize("type_name,bottoms,tops", [
    ("ContrastiveLoss", 3, 1), ("HingeLoss", 2, 1), ("MultinomialLogisticLoss", 2, 1),
    ("SigmoidCrossEntropyLoss", 2, 1)])
def test_blob_counts(type_name, bottoms, tops):
    cls = get_layer_class(type_name)
    assert (cls.exact_num_bottom, cls.exact_num_top, cls.auto_top_blobs) == (bottoms, tops, True)
    infogain = get_layer_class("InfogainLoss")
    assert (infogain.min_num_bottom, infogain.max_num_bottom, infogain.min_num_top,
            infogain.max_num_top) == (2, 3, 1, 2)


# -- ContrastiveLoss -----------------------------------------------------------------------------
@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_loss(legacy):
    N, C = 6, 3
    a, b = rand(N, C, 1, 1, seed=1), rand(N, C, 1, 1, seed=2)
    b[4] = a[4]                                        # d = 0: Caffe's 1e-4 keeps it finite
    y = torch.tensor([1., 0., 0., 1., 0., 0.4], dtype=torch.float64).view(N, 1, 1, 1)
    margin = 2.5 if not legacy else 4.0
    layer, tops = build("ContrastiveLoss", {"contrastive_loss_param": {
        "margin": margin, "legacy_version": legacy}}, [a.shape, b.shape, y.shape])
    assert tops == [()]
    loss, ga = 0.0, torch.zeros(N, C, dtype=torch.float64)
    for n in range(N):
        diff = [float(a[n, c] - b[n, c]) for c in range(C)]
        d2 = sum(v * v for v in diff)
        if int(y[n]):                       # 0.4 -> 0: dissimilar
            loss += d2
            ga[n] = torch.tensor(diff, dtype=torch.float64) / N
        elif legacy:
            loss += max(margin - d2, 0.0)
            ga[n] = torch.tensor(diff, dtype=torch.float64) * (-1.0 / N if margin - d2 > 0 else 0.0)
        else:
            d = math.sqrt(d2)
            loss += max(margin - d, 0.0) ** 2
            beta = -(margin - d) / (d + 1e-4) / N
            ga[n] = torch.tensor(diff, dtype=torch.float64) * (beta if margin - d > 0 else 0.0)
    ref = loss / N / 2
    assert abs(float(layer(a, b, y)[0]) - ref) < 1e-12
    torch.testing.assert_close(grad_of(layer, [a, b, y], 0).view(N, C), ga, rtol=1e-12,
                               atol=1e-14)
    torch.testing.assert_close(grad_of(layer, [a, b, y], 1).view(N, C), -ga, rtol=1e-12,
                               atol=1e-14)
    keep = [0, 1, 2, 3, 5]                  # gradcheck away from d = 0
    aa, bb = a[keep].clone().requires_grad_(), b[keep].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda p, q: layer(p, q, y[keep])[0], (aa, bb),
                                    atol=1e-4 if not legacy else 1e-6)
    with pytest.raises(NetError, match="similarity label"):
        layer(a, b, y.clone().requires_grad_())[0].backward()
    expect_net_error(lambda: build("ContrastiveLoss", {}, [(2, 3, 2, 1), (2, 3, 2, 1),
                                                           (2, 1, 1, 1)]), "(N, C, 1, 1)")


# -- HingeLoss ------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_hinge_loss(norm):
    N, D = 4, 5
    x = rand(N, D, seed=3)
    x[1, 2] = -1.0                          # 1 + t x = 0 exactly: sign(0) = 0
    label = torch.tensor([0., 2., 4., 1.], dtype=torch.float64)
    params = {"hinge_loss_param": {"norm": norm}} if norm == "L2" else {}
    layer, _ = build("HingeLoss", params, [x.shape, label.shape])
    loss, g = 0.0, torch.zeros(N, D, dtype=torch.float64)
    for n in range(N):
        for j in range(D):
            t = -1.0 if j == int(label[n]) else 1.0
            m = max(0.0, 1.0 + t * float(x[n, j]))
            loss += m if norm == "L1" else m * m
            g[n, j] = t * ((1.0 if m > 0 else 0.0) if norm == "L1" else 2 * m) / N
    assert abs(float(layer(x, label)[0]) - loss / N) < 1e-12
    torch.testing.assert_close(grad_of(layer, [x, label]), g, rtol=1e-12, atol=1e-15)
    x[1, 2] = -0.9
    assert torch.autograd.gradcheck(lambda t: layer(t, label)[0], (x.clone().requires_grad_(),))
    expect_net_error(lambda: layer(x, torch.tensor([0., 0., 0., 5.])), "out of range")


# -- MultinomialLogisticLoss ----------------------------------------------------------------------
def test_multinomial_logistic_loss_threshold_in_value_and_gradient():
    p = torch.softmax(rand(3, 4, seed=5), 1).view(3, 4, 1, 1)
    p[2, 1] = 1e-30                             # below kLOG_THRESHOLD
    label = torch.tensor([0., 3., 1.], dtype=torch.float64).view(3, 1, 1, 1)
    layer, tops = build("MultinomialLogisticLoss", {}, [p.shape, label.shape])
    assert tops == [()]
    ref = -sum(math.log(max(float(p[n, int(label[n])]), 1e-20)) for n in range(3)) / 3
    assert abs(float(layer(p, label)[0]) - ref) < 1e-12
    g = torch.zeros(3, 4, 1, 1, dtype=torch.float64)
    for n in range(3):
        g[n, int(label[n])] = -1.0 / 3 / max(float(p[n, int(label[n])]), 1e-20)
    torch.testing.assert_close(grad_of(layer, [p, label]), g, rtol=1e-12, atol=0)
    q = torch.rand(3, 4, 1, 1, dtype=torch.float64) + 0.1
    assert torch.autograd.gradcheck(lambda t: layer(t, label)[0], (q.requires_grad_(),))
    expect_net_error(lambda: build("MultinomialLogisticLoss", {}, [(3, 4), (3, 2)]), "(N, 1, 1, 1)")
    expect_net_error(lambda: build("MultinomialLogisticLoss", {}, [(3, 4), (2, 1)]),
                     "same first dimension")


# -- SigmoidCrossEntropyLoss ----------------------------------------------------------------------
@pytest.mark.parametrize("loss_param,divisor", [
    ({}, lambda valid, n, count: n),                                  # master's BATCH_SIZE
    ({"normalization": "VALID", "ignore_label": -1}, lambda valid, n, count: valid),
    ({"normalization": "FULL", "ignore_label": -1}, lambda valid, n, count: count),
    ({"normalize": True}, lambda valid, n, count: valid),
    ({"normalization": "NONE", "ignore_label": -1}, lambda valid, n, count: 1),
])
def test_sigmoid_cross_entropy_loss(loss_param, divisor):
    x = rand(3, 2, 2, seed=6) * 3
    t = torch.rand(3, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    t[0, 1, 0] = t[2, 0, 1] = -1.0
    ignore = loss_param.get("ignore_label")
    layer, _ = build("SigmoidCrossEntropyLoss", {"loss_param": loss_param}, [x.shape, t.shape])
    loss, valid, g = 0.0, 0, torch.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        if ignore is not None and int(t[idx]) == ignore:
            continue
        v, tv = float(x[idx]), float(t[idx])
        loss += -(tv * math.log(1 / (1 + math.exp(-v))) +
                  (1 - tv) * math.log(1 - 1 / (1 + math.exp(-v))))
        g[idx] = 1 / (1 + math.exp(-v)) - tv
        valid += 1
    div = divisor(valid, 3, 12)
    assert abs(float(layer(x, t)[0]) - loss / div) < 1e-12
    torch.testing.assert_close(grad_of(layer, [x, t]), g / div, rtol=1e-12, atol=1e-15)
    assert torch.autograd.gradcheck(lambda s: layer(s, t)[0], (x.clone().requires_grad_(),))
    with pytest.raises(NetError, match="label inputs"):
        layer(x, t.clone().requires_grad_())[0].backward()


# -- InfogainLoss ---------------------------------------------------------------------------------
def naive_infogain(scores, label, H, axis, ignore, mode):
    shape = scores.shape
    outer, K = math.prod(shape[:axis]), shape[axis]
    inner = math.prod(shape[axis + 1:])
    s = scores.reshape(outer, K, inner)
    lab = label.reshape(outer, inner)
    loss, count, g = 0.0, 0, torch.zeros(outer, K, inner, dtype=torch.float64)
    for i in range(outer):
        for j in range(inner):
            lv = int(lab[i, j])
            if ignore is not None and lv == ignore:
                continue
            e = [math.exp(float(s[i, k, j])) for k in range(K)]
            p = [v / sum(e) for v in e]
            for k in range(K):
                loss -= float(H[lv, k]) * math.log(max(p[k], 1e-20))
                g[i, k, j] = p[k] * float(H[lv].sum()) - float(H[lv, k])
            count += 1
    norm = {"VALID": count, "FULL": outer * inner, "BATCH_SIZE": outer, "NONE": 1}[mode]
    norm = max(1, norm)
    return loss / norm, (g / norm).reshape(shape)


@pytest.mark.parametrize("axis,mode,ignore", [(1, "VALID", None), (1, "VALID", 2),
                                              (2, "BATCH_SIZE", None), (1, "FULL", 0)])
def test_infogain_loss_with_matrix_bottom(axis, mode, ignore):
    scores = rand(2, 3, 4, seed=8)
    K = scores.shape[axis]
    label_shape = scores.shape[:axis] + scores.shape[axis + 1:]
    label = torch.randint(0, K, label_shape, generator=torch.Generator().manual_seed(9)).double()
    H = torch.rand(K, K, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    lp = {"normalization": mode}
    if ignore is not None:
        lp["ignore_label"] = ignore
    layer, tops = build("InfogainLoss", {"infogain_loss_param": {"axis": axis},
                                         "loss_param": lp},
                        [scores.shape, label.shape, (1, 1, K, K)], top=["loss", "prob"])
    assert tops == [(), tuple(scores.shape)]
    ref, g = naive_infogain(scores, label, H, axis, ignore, mode)
    loss, prob = layer(scores, label, H.view(1, 1, K, K))
    assert abs(float(loss) - ref) < 1e-12
    torch.testing.assert_close(prob, torch.softmax(scores, axis))
    torch.testing.assert_close(grad_of(layer, [scores, label, H.view(1, 1, K, K)]), g,
                               rtol=1e-10, atol=1e-14)
    assert torch.autograd.gradcheck(lambda s: layer(s, label, H)[0],
                                    (scores.clone().requires_grad_(),))


def test_infogain_loss_reads_the_matrix_source(tmp_path):
    from deeplab_caffe.io.blobs import blob_to_proto
    from deeplab_caffe.proto import wire
    from deeplab_caffe.proto.schema import get_schema
    H = np.array([[1.0, 0.5, 0.0], [0.2, 2.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    path = tmp_path / "H.binaryproto"
    path.write_bytes(wire.encode(blob_to_proto(H.reshape(1, 1, 3, 3)), get_schema("bvlc")))
    scores, label = rand(4, 3, seed=11), torch.tensor([0., 1., 2., 1.], dtype=torch.float64)
    layer, _ = build("InfogainLoss", {"infogain_loss_param": {"source": str(path)}},
                     [scores.shape, label.shape])
    ref, _ = naive_infogain(scores, label, torch.from_numpy(H).double(), 1, None, "VALID")
    assert abs(float(layer(scores, label)[0]) - ref) < 1e-6
    expect_net_error(lambda: build("InfogainLoss", {}, [scores.shape, label.shape]),
                     "source must be specified")
    expect_net_error(lambda: build("InfogainLoss", {"loss_param": {"normalize": True}},
                                   [scores.shape, label.shape, (1, 1, 3, 3)]), "deprecated")
    expect_net_error(lambda: build("InfogainLoss", {"infogain_loss_param": {"source": str(path)}},
                                   [(4, 5), label.shape]), "9 values", "5x5")
    expect_net_error(lambda: build("InfogainLoss", {"infogain_loss_param": {
        "source": str(tmp_path / "missing")}}, [scores.shape, label.shape]), "cannot open")
