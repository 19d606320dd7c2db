"""ReLU, Dropout, InnerProduct, LRN, Eltwise, Concat, Slice, Split, Silence, Flatten and
MatWrite against naive references written from Caffe's rules."""
import numpy as np
import pytest
import torch

from layer_util import build, distinct, expect_net_error


def gen(seed):
    return torch.Generator().manual_seed(seed)


def rand(*shape, seed=0):
    return torch.randn(shape, dtype=torch.float64, generator=gen(seed))


def gradcheck(layer, *xs):
    xs = [x.detach().clone().requires_grad_() for x in xs]
    return torch.autograd.gradcheck(lambda *t: layer(*t)[0], xs)


# -- ReLU ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_relu(slope):
    x = rand(2, 3, 4, seed=1)
    x[0, 0, :2] = 0.0
    params = {"relu_param": {"negative_slope": slope}} if slope else {}
    layer, shapes = build("ReLU", params, [x.shape])
    assert shapes == [(2, 3, 4)]
    ref = torch.tensor([v if v > 0 else slope * v for v in x.flatten().tolist()],
                       dtype=torch.float64).reshape(x.shape)
    assert torch.equal(layer(x)[0], ref)
    xg = x.clone().requires_grad_()
    layer(xg)[0].sum().backward()
    # Caffe's backward: 1 where x > 0, negative_slope where x <= 0 (also at exactly 0).
    assert torch.equal(xg.grad, torch.where(x > 0, torch.ones_like(x), torch.full_like(x, slope)))
    assert gradcheck(layer, x + 0.01 * torch.sign(x) + 0.02 * (x == 0))


# -- Dropout ---------------------------------------------------------------------------------------
def test_dropout_train_scales_and_test_is_identity():
    x = torch.rand(100, 200, dtype=torch.float64) + 1.0
    layer, _ = build("Dropout", {"dropout_param": {"dropout_ratio": 0.3}}, [x.shape],
                     phase="TRAIN")
    assert layer.training
    torch.manual_seed(0)
    y = layer(x)[0]
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.7, rtol=1e-15, atol=0)
    assert 0.68 < kept.double().mean().item() < 0.72
    layer.eval()
    assert torch.equal(layer(x)[0], x)
    layer, _ = build("Dropout", {}, [x.shape], phase="TEST")
    assert not layer.training and torch.equal(layer(x)[0], x)
    expect_net_error(lambda: build("Dropout", {"dropout_param": {"dropout_ratio": 1.0}},
                                   [x.shape]), "dropout_ratio")


# -- InnerProduct ----------------------------------------------------------------------------------
@pytest.mark.parametrize("axis,transpose,bias", [(1, False, True), (2, False, False),
                                                 (-1, True, True)])
def test_inner_product_matches_loops(axis, transpose, bias):
    x = rand(2, 3, 2, 2, seed=2)
    prm = {"num_output": 5, "axis": axis, "transpose": transpose, "bias_term": bias,
           "weight_filler": {"type": "gaussian", "std": 0.5},
           "bias_filler": {"type": "constant", "value": 0.25}}
    layer, shapes = build("InnerProduct", {"inner_product_param": prm}, [x.shape])
    a = axis % 4
    K = int(np.prod(x.shape[a:]))
    assert shapes == [tuple(x.shape[:a]) + (5,)]
    w = layer.blobs[0]
    assert tuple(w.shape) == ((K, 5) if transpose else (5, K))
    assert len(layer.blobs) == (2 if bias else 1)
    if bias:
        assert torch.equal(layer.blobs[1].detach(), torch.full((5,), 0.25))
    layer.double()
    rows = x.reshape(-1, K)
    wm = w.detach().numpy()
    ref = np.zeros((rows.shape[0], 5))
    for m in range(rows.shape[0]):
        for o in range(5):
            ref[m, o] = sum(rows[m, k].item() * (wm[k, o] if transpose else wm[o, k])
                            for k in range(K)) + (0.25 if bias else 0.0)
    y = layer(x)[0]
    np.testing.assert_allclose(y.detach().reshape(-1, 5).numpy(), ref, rtol=1e-12, atol=1e-14)
    assert gradcheck(layer, x)
    # The weights' gradient, too.
    assert torch.autograd.gradcheck(lambda wt: torch.func.functional_call(
        layer, {"blobs.0": wt}, (x,))[0], (w.detach().clone().requires_grad_(),))


def test_inner_product_default_filler_is_zero_and_errors():
    layer, _ = build("InnerProduct", {"inner_product_param": {"num_output": 3}}, [(2, 4)])
    assert not layer.blobs[0].detach().any() and not layer.blobs[1].detach().any()
    expect_net_error(lambda: build("InnerProduct", {"inner_product_param": {}}, [(2, 4)]),
                     "num_output")
    expect_net_error(lambda: layer(torch.zeros(2, 5)), "does not match")
    expect_net_error(lambda: build("InnerProduct", {"inner_product_param": {
        "num_output": 3, "weight_filler": {"type": "nonsense"}}}, [(2, 4)]), "weight_filler")


# -- LRN -------------------------------------------------------------------------------------------
def naive_lrn(x, n, alpha, beta, k, region):
    x = x.numpy()
    N, C, H, W = x.shape
    out = np.zeros_like(x)
    pre = (n - 1) // 2
    for a in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    if region == "ACROSS_CHANNELS":
                        lo, hi = max(0, c - pre), min(C, c - pre + n)
                        scale = k + alpha / n * (x[a, lo:hi, h, w] ** 2).sum()
                    else:
                        win = x[a, c, max(0, h - pre):h - pre + n, max(0, w - pre):w - pre + n]
                        scale = 1.0 + alpha / (n * n) * (win ** 2).sum()
                    out[a, c, h, w] = x[a, c, h, w] * scale ** -beta
    return out


@pytest.mark.parametrize("region,n", [("ACROSS_CHANNELS", 5), ("ACROSS_CHANNELS", 3),
                                      ("WITHIN_CHANNEL", 3)])
def test_lrn_matches_naive(region, n):
    x = rand(2, 6, 4, 5, seed=3)
    prm = {"local_size": n, "alpha": 0.7, "beta": 0.6, "k": 2.0, "norm_region": region}
    layer, shapes = build("LRN", {"lrn_param": prm}, [x.shape])
    assert shapes == [tuple(x.shape)]
    np.testing.assert_allclose(layer(x)[0].numpy(), naive_lrn(x, n, 0.7, 0.6, 2.0, region),
                               rtol=1e-13)
    assert gradcheck(layer, x[:1, :4, :3, :3])


def test_lrn_defaults_and_errors():
    x = rand(1, 7, 2, 2, seed=4)
    layer, _ = build("LRN", {}, [x.shape])
    np.testing.assert_allclose(layer(x)[0].numpy(), naive_lrn(x, 5, 1.0, 0.75, 1.0,
                                                              "ACROSS_CHANNELS"), rtol=1e-13)
    expect_net_error(lambda: build("LRN", {"lrn_param": {"local_size": 4}}, [x.shape]), "odd")


# -- Eltwise ---------------------------------------------------------------------------------------
def test_eltwise_sum_prod_with_gradcheck():
    a, b, c = rand(2, 3, seed=5), rand(2, 3, seed=6), rand(2, 3, seed=7)
    layer, shapes = build("Eltwise", {"eltwise_param": {"coeff": [1.0, -2.0, 0.5]}},
                          [a.shape] * 3)
    assert shapes == [(2, 3)]
    torch.testing.assert_close(layer(a, b, c)[0], a - 2 * b + 0.5 * c, rtol=1e-15, atol=1e-15)
    assert gradcheck(layer, a, b, c)
    layer, _ = build("Eltwise", {"eltwise_param": {"operation": "PROD"}}, [a.shape] * 3)
    torch.testing.assert_close(layer(a, b, c)[0], a * b * c, rtol=1e-15, atol=0)
    assert gradcheck(layer, a, b, c)


def test_eltwise_max_caffe_tie_rule():
    a = torch.tensor([1.0, 2.0, 5.0, 3.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([1.0, 4.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([0.0, 4.0, 6.0, 3.0], dtype=torch.float64, requires_grad=True)
    layer, _ = build("Eltwise", {"eltwise_param": {"operation": "MAX"}}, [a.shape] * 3)
    y = layer(a, b, c)[0]
    assert y.tolist() == [1.0, 4.0, 6.0, 3.0]
    y.sum().backward()
    # Ties: bottom 0 vs 1 -> bottom 1; later bottoms take over only when strictly greater.
    assert a.grad.tolist() == [0, 0, 0, 0]
    assert b.grad.tolist() == [1, 1, 0, 1]
    assert c.grad.tolist() == [0, 0, 1, 0]
    d = distinct((2, 3), seed=8)
    assert gradcheck(layer, d, distinct((2, 3), seed=9), distinct((2, 3), seed=10))


def test_eltwise_errors():
    expect_net_error(lambda: build("Eltwise", {"eltwise_param": {"coeff": [1.0]}},
                                   [(2,), (2,)]), "coeff")
    expect_net_error(lambda: build("Eltwise", {"eltwise_param": {"operation": "PROD",
                                                                 "coeff": [1.0, 1.0]}},
                                   [(2,), (2,)]), "SUM")
    expect_net_error(lambda: build("Eltwise", {}, [(2, 3), (2, 4)]), "(2, 4)")


def test_eltwise_max_accepts_and_ignores_coeff():
    layer, _ = build("Eltwise", {"eltwise_param": {"operation": "MAX", "coeff": [2.0, -1.0]}},
                     [(3,), (3,)])
    a, b = torch.tensor([1.0, 5.0, -2.0]), torch.tensor([3.0, 4.0, -3.0])
    assert layer(a, b)[0].tolist() == [3.0, 5.0, -2.0]


# -- Concat / Slice / Split / Silence / Flatten ----------------------------------------------------
def test_concat_axis_and_concat_dim():
    a, b = rand(2, 3, 4, seed=11), rand(2, 1, 4, seed=12)
    layer, shapes = build("Concat", {}, [a.shape, b.shape])
    assert shapes == [(2, 4, 4)]
    y = layer(a, b)[0]
    assert torch.equal(y[:, :3], a) and torch.equal(y[:, 3:], b)
    assert gradcheck(layer, a, b)
    c = rand(5, 3, 4, seed=13)
    layer, shapes = build("Concat", {"concat_param": {"concat_dim": 0}}, [a.shape, c.shape])
    assert shapes == [(7, 3, 4)] and torch.equal(layer(a, c)[0], torch.cat([a, c]))
    expect_net_error(lambda: build("Concat", {"concat_param": {"axis": 2}}, [a.shape, b.shape]),
                     "does not match")
    expect_net_error(lambda: build("Concat", {"concat_param": {"axis": 1, "concat_dim": 1}},
                                   [a.shape]), "not both")


def test_slice_points_and_equal_parts():
    x = rand(2, 7, 3, seed=14)
    layer, shapes = build("Slice", {"slice_param": {"slice_point": [2, 3]}}, [x.shape],
                          top=("a", "b", "c"))
    assert shapes == [(2, 2, 3), (2, 1, 3), (2, 4, 3)]
    a, b, c = layer(x)
    assert torch.equal(a, x[:, :2]) and torch.equal(b, x[:, 2:3]) and torch.equal(c, x[:, 3:])
    layer, shapes = build("Slice", {"slice_param": {"slice_dim": 2}}, [x.shape], top=("a", "b",
                                                                                      "c"))
    assert shapes == [(2, 7, 1)] * 3
    assert torch.equal(torch.cat(layer(x), 2), x)
    expect_net_error(lambda: build("Slice", {}, [x.shape], top=("a", "b")), "equal parts")
    expect_net_error(lambda: build("Slice", {"slice_param": {"slice_point": [3, 2]}}, [x.shape],
                                   top=("a", "b", "c")), "slice_point")
    expect_net_error(lambda: build("Slice", {"slice_param": {"slice_point": [3]}}, [x.shape],
                                   top=("a", "b", "c")), "needs 2")


def test_split_sums_gradients_and_silence():
    x = rand(2, 3, seed=15).requires_grad_()
    layer, shapes = build("Split", {}, [x.shape], top=("a", "b", "c"))
    assert shapes == [(2, 3)] * 3
    a, b, c = layer(x)
    assert torch.equal(a, x) and torch.equal(c, x)
    (a * 1 + b * 2 + c * 3).sum().backward()
    assert torch.equal(x.grad, torch.full((2, 3), 6.0, dtype=torch.float64))
    layer, shapes = build("Silence", {}, [(2, 3), (4,)], top=())
    assert shapes == [] and layer(x, x) == ()


def test_flatten():
    x = rand(2, 3, 4, 5, seed=16)
    for prm, shape in (({}, (2, 60)), ({"axis": 2}, (2, 3, 20)),
                       ({"axis": 1, "end_axis": 2}, (2, 12, 5)), ({"axis": -3, "end_axis": -2},
                                                                  (2, 12, 5))):
        layer, shapes = build("Flatten", {"flatten_param": prm}, [x.shape])
        assert shapes == [shape] and torch.equal(layer(x)[0], x.reshape(shape))
    expect_net_error(lambda: build("Flatten", {"flatten_param": {"axis": 2, "end_axis": 1}},
                                   [x.shape]), "end_axis")
    expect_net_error(lambda: build("Flatten", {"flatten_param": {"axis": 4}}, [x.shape]),
                     "out of range")


# -- MatWrite --------------------------------------------------------------------------------------
def test_mat_write_names_period_and_layout(tmp_path):
    from scipy.io import loadmat
    src = tmp_path / "ids.txt"
    src.write_text("2007_000033.png extra\n\n2007_000042.png\n2007_000061.png\n")
    prefix = str(tmp_path / "out" / "fc8") + "/"
    prm = {"mat_write_param": {"prefix": prefix, "source": str(src), "strip": 4, "period": 2}}
    x, y = rand(1, 3, 4, 5, seed=17), rand(1, 2, 4, 5, seed=18).float()
    layer, shapes = build("MatWrite", prm, [x.shape, y.shape], top=())
    assert shapes == []
    for _ in range(3):
        assert layer(x, y) == ()
    out = tmp_path / "out" / "fc8"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["2007_000033_blob_0.mat", "2007_000033_blob_1.mat",
                     "2007_000061_blob_0.mat", "2007_000061_blob_1.mat"]
    data = loadmat(out / "2007_000033_blob_0.mat")["data"]
    assert data.dtype == np.float32 and data.shape == (5, 4, 3, 1)   # [W, H, C, N]: ToMat
    assert np.array_equal(data[:, :, :, 0], x.float().numpy()[0].transpose(2, 1, 0))
    layer(x, y)       # forward #3: not written (period 2)
    expect_net_error(lambda: layer(x, y), "3 names")        # forward #4: past the list


def test_mat_write_npy_option_and_errors(tmp_path):
    layer, _ = build("MatWrite", {"mat_write_param": {"prefix": str(tmp_path) + "/s_"}},
                     [(1, 2)], top=())
    layer.file_format = "npy"
    layer(torch.ones(1, 2))
    layer(torch.full((1, 2), 3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s_iter_0_blob_0.npy",
                                                          "s_iter_1_blob_0.npy"]
    assert np.array_equal(np.load(tmp_path / "s_iter_1_blob_0.npy"), np.full((1, 2), 3.0))
    layer.file_format = "png"
    expect_net_error(lambda: layer(torch.ones(1, 2)), "file_format", "'png'")
    expect_net_error(lambda: build("MatWrite", {"mat_write_param": {}}, [(1, 2)], top=()),
                     "prefix")
    expect_net_error(lambda: build("MatWrite", {"mat_write_param": {
        "prefix": "x", "source": str(tmp_path / "missing.txt")}}, [(1, 2)], top=()),
        "missing.txt")


# -- CUDA parity (runs on a GPU machine: tools/gpu_check.sh) ---------------------------------------
CUDA_CASES = [
    ("Pooling", {"pooling_param": {"pool": "MAX", "kernel_size": 3, "stride": 2, "pad": 1}},
     [(2, 3, 33, 33)]),
    ("Pooling", {"pooling_param": {"pool": "AVE", "kernel_size": 3, "stride": 2, "pad": 2}},
     [(2, 3, 17, 15)]),
    ("Interp", {"interp_param": {"zoom_factor": 8}}, [(1, 4, 9, 9)]),
    ("Interp", {"interp_param": {"shrink_factor": 8, "pad_beg": -1}}, [(1, 1, 50, 50)]),
    ("Padding", {"padding_param": {"pad_beg": -7, "pad_end": -8}}, [(1, 2, 40, 40)]),
    ("LRN", {"lrn_param": {"local_size": 5, "alpha": 1e-4, "beta": 0.75}}, [(2, 8, 5, 5)]),
    ("LRN", {"lrn_param": {"norm_region": "WITHIN_CHANNEL", "local_size": 3}}, [(2, 3, 6, 6)]),
    ("Eltwise", {"eltwise_param": {"operation": "MAX"}}, [(2, 3, 4), (2, 3, 4), (2, 3, 4)]),
]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("case", range(len(CUDA_CASES)))
def test_layers_cuda_match_cpu(case):
    type_name, params, shapes = CUDA_CASES[case]
    layer, _ = build(type_name, params, shapes)
    xs = [distinct(s, seed=i) for i, s in enumerate(shapes)]
    outs = {}
    for dev in ("cpu", "cuda"):
        ins = [x.to(dev).requires_grad_() for x in xs]
        y = layer(*ins)[0]
        (y * torch.arange(y.numel(), device=dev, dtype=y.dtype).reshape(y.shape)).sum().backward()
        outs[dev] = [y.detach().cpu()] + [i.grad.cpu() for i in ins]
    for a, b in zip(outs["cpu"], outs["cuda"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_softmax_loss_and_seg_accuracy_cuda_match_cpu():
    g = gen(20)
    scores = torch.randn(2, 5, 7, 6, dtype=torch.float64, generator=g)
    label = torch.randint(0, 5, (2, 1, 7, 6), generator=g).double()
    label[:, :, :2] = 255
    loss_layer, _ = build("SoftmaxWithLoss", {"softmaxloss_param": {"ignore_label": [255]}},
                          [scores.shape, label.shape])
    acc_layer, _ = build("SegAccuracy", {"seg_accuracy_param": {"ignore_label": [255]}},
                         [scores.shape, label.shape])
    res = {}
    for dev in ("cpu", "cuda"):
        s = scores.to(dev).requires_grad_()
        loss = loss_layer(s, label.to(dev))[0]
        loss.backward()
        res[dev] = (loss.detach().cpu(), s.grad.cpu(), acc_layer(s, label.to(dev))[0].cpu())
    for a, b in zip(res["cpu"], res["cuda"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
