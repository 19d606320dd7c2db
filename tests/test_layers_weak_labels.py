"""DeepLab v1's label-handling layers (UniqueLabel, CensorLabel, Histogram, IgnoreOverlay, OneHot,
DominantChannel, ArgMax) against naive loop references written from the fork's C++."""
import pytest
import torch

from deeplab_caffe.errors import NetError
from deeplab_caffe.layers.base import get_layer_class
from layer_util import build, expect_net_error, make_spec


def labels_map(shape, values, seed):
    g = torch.Generator().manual_seed(seed)
    v = torch.tensor(values, dtype=torch.float32)
    return v[torch.randint(len(values), shape, generator=g)]


def fork_layer(type_name, params, bottom_shapes):
    """A layer as a DeepLab v1 file gives it (LayerSpec.dialect "deeplab_v1")."""
    spec = make_spec(type_name, params, [f"b{i}" for i in range(len(bottom_shapes))])
    spec.dialect = "deeplab_v1"
    layer = get_layer_class(type_name, spec)(spec, "TRAIN")
    return layer, layer.setup([tuple(s) for s in bottom_shapes])


# -- UniqueLabel ------------------------------------------------------------------------------
def unique_ref(label, max_labels, ignore, force):
    out = []
    for img in label:
        vals = sorted({float(v) for v in img.reshape(-1).tolist() if float(v) not in ignore}
                      | set(force))
        out.append(vals + [-1.0] * (max_labels - len(vals)))
    return torch.tensor(out).reshape(len(out), max_labels, 1, 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unique_label_matches_reference(seed):
    g = torch.Generator().manual_seed(seed)
    n, h, w = (int(v) for v in torch.randint(1, 5, (3,), generator=g))
    x = labels_map((n, 1, h, w), [0, 3, 7, 255, 12], seed)
    params = {"unique_label_param": {"max_labels": 6, "ignore_label": [255.0],
                                     "force_label": [0.0]}}
    layer, shapes = build("UniqueLabel", params, [x.shape])
    assert shapes == [(n, 6, 1, 1)]
    (out,) = layer(x)
    assert torch.equal(out, unique_ref(x, 6, {255.0}, {0.0}))


def test_unique_label_capacity_and_forced_count_are_checked():
    x = torch.tensor([0., 1., 2., 3.]).reshape(1, 1, 2, 2)
    layer, _ = build("UniqueLabel", {"unique_label_param": {"max_labels": 3}}, [x.shape])
    expect_net_error(lambda: layer(x), "4 distinct labels", "max_labels 3")
    expect_net_error(lambda: build("UniqueLabel", {"unique_label_param": {
        "max_labels": 2, "force_label": [0.0, 5.0]}}, [x.shape]), "must exceed")
    expect_net_error(lambda: build("UniqueLabel", {}, [x.shape]), "max_labels")
    expect_net_error(lambda: build("UniqueLabel", {"unique_label_param": {"max_labels": 3}},
                                   [(1, 2, 2, 2)]), "one channel")


def test_unique_label_refuses_a_backward_into_its_label_input():
    x = torch.tensor([0., 1.]).reshape(1, 1, 1, 2).requires_grad_()
    layer, _ = build("UniqueLabel", {"unique_label_param": {"max_labels": 3}}, [x.shape])
    (out,) = layer(x)
    with pytest.raises(NetError, match="cannot propagate down to the label input"):
        out.sum().backward()
    (out,) = layer(x.detach())       # a plain label map: nothing to refuse
    assert not out.requires_grad


# -- CensorLabel ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_censor_label_matches_reference(seed):
    x = labels_map((2, 1, 3, 4), [0, 1, 2, 5, 255], seed)
    lst = torch.tensor([[0., 2., -1.], [5., -1., -1.]]).reshape(2, 3, 1, 1)
    layer, shapes = build("CensorLabel", {"censor_label_param": {"ignore_label": 255}},
                          [x.shape, lst.shape])
    assert shapes == [(2, 1, 3, 4)]
    (out,) = layer(x, lst)
    ref = x.clone()
    for n in range(2):
        keep = {v for v in lst[n].reshape(-1).tolist() if v != -1}
        for i in range(3):
            for j in range(4):
                if float(x[n, 0, i, j]) not in keep:
                    ref[n, 0, i, j] = 255
    assert torch.equal(out, ref)


def test_censor_label_needs_ignore_label():
    expect_net_error(lambda: build("CensorLabel", {}, [(1, 1, 2, 2), (1, 3, 1, 1)]),
                     "ignore_label")


# -- Histogram --------------------------------------------------------------------------------
def test_histogram_counts_the_whole_batch_into_row_0_as_the_cpp():
    x = labels_map((3, 1, 4, 5), [0, 1, 3, 255], 4)
    layer, shapes = build("Histogram", {"histogram_param": {"num_labels": 4,
                                                            "ignore_label": [255]}}, [x.shape])
    assert shapes == [(3, 4, 1, 1)]
    (out,) = layer(x)
    ref = torch.zeros(3, 4, 1, 1)
    for v in x.reshape(-1).tolist():
        if v != 255:
            ref[0, int(v), 0, 0] += 1    # the C++ never offsets its top pointer by the image
    assert torch.equal(out, ref)


def test_histogram_rejects_non_integers_and_unexpected_labels():
    layer, _ = build("Histogram", {"histogram_param": {"num_labels": 3}}, [(1, 1, 1, 2)])
    expect_net_error(lambda: layer(torch.tensor([0., 1.5]).reshape(1, 1, 1, 2)),
                     "integer-valued")
    expect_net_error(lambda: layer(torch.tensor([0., 3.]).reshape(1, 1, 1, 2)),
                     "unexpected label 3")


# -- IgnoreOverlay ----------------------------------------------------------------------------
def test_ignore_overlay_copies_bottom1_except_where_bottom0_is_ignored():
    a = labels_map((2, 1, 3, 3), [0, 1, 255, 255.7], 1)
    b = labels_map((2, 1, 3, 3), [0, 4, 9], 2)
    layer, _ = build("IgnoreOverlay", {"ignore_overlay_param": {"ignore_label": 255}},
                     [a.shape, b.shape])
    (out,) = layer(a, b)
    ref = b.clone()
    for idx, v in enumerate(a.reshape(-1).tolist()):
        if int(v) == 255:                 # truncated, as `const int value = bottom_data[i]`
            ref.view(-1)[idx] = 255
    assert torch.equal(out, ref)
    # Unset ignore_label reads as 0 (no default in the fork's proto).
    layer0, _ = build("IgnoreOverlay", {}, [a.shape, b.shape])
    (out0,) = layer0(a, b)
    assert torch.equal(out0, torch.where(a == 0, torch.zeros_like(b), b))
    expect_net_error(lambda: build("IgnoreOverlay", {}, [(1, 1, 2, 2), (1, 2, 2, 2)]),
                     "incompatible")


# -- OneHot -----------------------------------------------------------------------------------
def test_onehot_matches_reference_and_skips_minus_one():
    x = labels_map((2, 3, 2, 3), [-1, 0, 1, 2], 5)
    layer, shapes = build("OneHot", {"onehot_param": {"num_labels": 3}}, [x.shape])
    assert shapes == [(2, 3, 2, 3)]
    (out,) = layer(x)
    ref = torch.zeros(2, 3, 2, 3)
    for n in range(2):
        for c in range(3):
            for i in range(2):
                for j in range(3):
                    lab = int(x[n, c, i, j])
                    if lab >= 0:
                        ref[n, lab, i, j] = 1
    assert torch.equal(out, ref)
    expect_net_error(lambda: build("OneHot", {"onehot_param": {"num_labels": 4}}, [x.shape]),
                     "less than or equal")
    expect_net_error(lambda: layer(torch.full((2, 3, 2, 3), 3.0)), "out of range")
    (out,) = layer(x.clone().requires_grad_())
    with pytest.raises(NetError, match="NOT_IMPLEMENTED"):
        out.sum().backward()


# -- DominantChannel --------------------------------------------------------------------------
def dominant_ref(x, k):
    n, c = x.shape[:2]
    out = torch.zeros(n, k, 1, 1)
    for i in range(n):
        hist = [[0] * k for _ in range(c)]
        for p in x[i].reshape(c, -1).t().tolist():
            order = sorted(range(c), key=lambda ch: (-p[ch], ch))
            for j in range(k):
                hist[order[j]][j] += 1
        order = sorted(range(c), key=lambda ch: ([-v for v in hist[ch]], ch))
        out[i, :, 0, 0] = torch.tensor(order[:k], dtype=torch.float32)
    return out


@pytest.mark.parametrize("seed,k", [(0, 1), (1, 2), (2, 3)])
def test_dominant_channel_matches_reference(seed, k):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 4, (2, 5, 3, 4), generator=g).float()    # many ties
    layer, shapes = build("DominantChannel", {"dominant_channel_param": {"top_k": k}},
                          [x.shape])
    assert shapes == [(2, k, 1, 1)]
    (out,) = layer(x.requires_grad_())
    assert torch.equal(out, dominant_ref(x.detach(), k)) and not out.requires_grad
    expect_net_error(lambda: build("DominantChannel", {"dominant_channel_param": {"top_k": 5}},
                                   [x.shape]), "less than the number of channels")


# -- ArgMax -----------------------------------------------------------------------------------
def ranked(values):
    """Indices by (value, index) descending: std::greater on (value, index) pairs."""
    return sorted(range(len(values)), key=lambda i: (values[i], i), reverse=True)


@pytest.mark.parametrize("out_max_val", [False, True])
def test_fork_argmax_is_per_pixel_over_channels(out_max_val):
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 3, (2, 4, 3, 2), generator=g).float()
    k = 2
    layer, shapes = fork_layer("ArgMax", {"argmax_param": {"top_k": k,
                                                          "out_max_val": out_max_val}}, [x.shape])
    c_out = 2 * k if out_max_val else k
    assert shapes == [(2, c_out, 3, 2)]
    (out,) = layer(x.requires_grad_())
    ref = torch.zeros(2, c_out, 3, 2)
    for n in range(2):
        for i in range(3):
            for j in range(2):
                vals = x[n, :, i, j].tolist()
                for r, ch in enumerate(ranked(vals)[:k]):
                    ref[n, r, i, j] = ch
                    if out_max_val:
                        ref[n, k + r, i, j] = vals[ch]
    assert torch.equal(out, ref)
    assert not out.requires_grad          # the fork's Backward does nothing


def test_bvlc_argmax_over_each_image_and_along_an_axis():
    g = torch.Generator().manual_seed(4)
    x = torch.randint(0, 5, (2, 3, 2, 2), generator=g).float()
    layer, shapes = build("ArgMax", {"argmax_param": {"top_k": 3, "out_max_val": True}},
                          [x.shape])
    assert shapes == [(2, 2, 3, 1)]
    (out,) = layer(x)
    for n in range(2):
        vals = x[n].reshape(-1).tolist()
        top = ranked(vals)[:3]
        assert out[n, 0, :, 0].tolist() == top
        assert out[n, 1, :, 0].tolist() == [vals[i] for i in top]
    layer, shapes = build("ArgMax", {"argmax_param": {"axis": 1}}, [x.shape])
    assert shapes == [(2, 1, 2, 2)]
    (out,) = layer(x)
    for n in range(2):
        for i in range(2):
            for j in range(2):
                assert out[n, 0, i, j] == ranked(x[n, :, i, j].tolist())[0]
    layer, _ = build("ArgMax", {"argmax_param": {"axis": 1, "out_max_val": True}}, [x.shape])
    assert torch.equal(layer(x)[0], x.max(1, keepdim=True).values)
    (out,) = layer(x.clone().requires_grad_())
    with pytest.raises(NetError, match="NOT_IMPLEMENTED"):
        out.sum().backward()
    expect_net_error(lambda: build("ArgMax", {"argmax_param": {"top_k": 13}}, [x.shape]),
                     "exceeds")


@pytest.mark.parametrize("type_name,bottoms", [
    ("UniqueLabel", 1), ("BiasChannel", 2), ("AdaptiveBiasChannel", 2), ("DominantChannel", 1),
    ("CensorLabel", 2), ("ChannelAggregator", 1), ("GainChannel", 1), ("IgnoreOverlay", 2),
    ("Histogram", 1), ("RelativeError", 2), ("OneHot", 1), ("ArgMax", 1)])
def test_blob_counts_are_the_cpp_headers(type_name, bottoms):
    cls = get_layer_class(type_name)
    assert (cls.exact_num_bottom, cls.exact_num_top, cls.auto_top_blobs) == (bottoms, 1, False)
