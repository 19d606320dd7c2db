"""CRF-RNN's MultiStageMeanfield layer against naive O(P^2) mean fields written here, and built
from a prototxt in CRF-RNN's published form."""
import os

import pytest
import torch

import deeplab_caffe as dc
from deeplab_caffe.ops.crf import build_lattice, lattice_filter

from crf_reference import gaussian_matrix
from deeplab_v1_util import voc_layout
from layer_util import build, expect_net_error
from test_crf_lattice import grid_features
from test_crf_meanfield import scene

PARAMS = {"multi_stage_meanfield_param": {
    "num_iterations": 4, "theta_alpha": 8.0, "theta_beta": 13.0, "theta_gamma": 3.0,
    "spatial_filter_weights_str": "3 2 3 4", "bilateral_filter_weight": 5.0}}


def naive_crfrnn(unary, q0, mats, w_s, w_b, C, iters):
    """CRF-RNN's iteration with the filters as (P, P) matrices, NORMALIZE_AFTER by row sums,
    (P, L) float64: out = unary - (C (W_s m_s + W_b m_b)), m = (K softmax(prev)) / (K 1)."""
    prev = q0
    for _ in range(iters):
        q = torch.softmax(prev, 1)
        ms, mb = ((K @ q) / (K @ torch.ones(K.shape[0], 1, dtype=K.dtype)) for K in mats)
        prev = unary - (ms @ w_s.t() + mb @ w_b.t()) @ C.t()
    return prev


def _layer_case(h=14, w=16, L=4):
    img, scores = scene(1, h, w, L, 4)
    layer, tops = build("MultiStageMeanfield", PARAMS, [(1, L, h, w)] * 2 + [(1, 3, h, w)])
    return layer, tops, img, scores


def flat(x):
    return x[0].reshape(x.shape[1], -1).t().double()


def test_blobs_in_crfrnn_order_and_initialisation():
    layer, tops, _, _ = _layer_case()
    assert tops == [(1, 4, 14, 16)]
    assert [tuple(b.shape) for b in layer.blobs] == [(1, 1, 4, 4)] * 3
    torch.testing.assert_close(layer.blobs[0][0, 0], torch.diag(torch.tensor([3., 2., 3., 4.])))
    torch.testing.assert_close(layer.blobs[1][0, 0], 5 * torch.eye(4))
    torch.testing.assert_close(layer.blobs[2][0, 0], -torch.eye(4))


def test_forward_and_backward_match_the_naive_lattice_matrices():
    layer, _, img, scores = _layer_case()
    h, w = 14, 16
    with torch.no_grad():
        layer.blobs[2].add_(0.2 * torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0)))
    hwc = img[0].permute(1, 2, 0).float()
    lats = [build_lattice(grid_features(h, w, 3.0)), build_lattice(grid_features(h, w, 8.0, hwc, 13.0))]
    mats = [lattice_filter(torch.eye(h * w), lat).double() for lat in lats]
    q0 = scores * 0.5
    x = scores.clone().requires_grad_()
    out = layer(x, q0, img)[0]
    blobs = [b[0, 0].detach().double().requires_grad_() for b in layer.blobs]
    u = flat(scores).requires_grad_()
    ref = naive_crfrnn(u, flat(q0), mats, *blobs, 4)
    torch.testing.assert_close(flat(out.detach()), ref.detach(), atol=1e-4, rtol=1e-4)
    g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (ref * g).sum().backward()
    (flat(out) * g).sum().backward()
    torch.testing.assert_close(flat(x.grad), u.grad, atol=2e-4, rtol=1e-3)
    for ours, theirs in zip(layer.blobs, blobs):
        torch.testing.assert_close(ours.grad[0, 0].double(), theirs.grad, atol=2e-4, rtol=1e-3)


def test_forward_near_the_exact_gaussian_mean_field():
    layer, _, img, scores = _layer_case(h=20, w=22)
    hwc = img[0].permute(1, 2, 0)
    mats = [gaussian_matrix(grid_features(20, 22, 3.0)),
            gaussian_matrix(grid_features(20, 22, 8.0, hwc, 13.0))]
    with torch.no_grad():
        out = layer(scores, scores, img)[0]
    blobs = [b[0, 0].double() for b in layer.blobs]
    exact = naive_crfrnn(flat(scores), flat(scores), mats, *blobs, 4)
    agree = float((flat(out).argmax(1) == exact.argmax(1)).double().mean())
    changed = float((exact.argmax(1) != flat(scores).argmax(1)).double().mean())
    assert agree >= 0.95, agree            # the lattice approximates the Gaussians
    assert changed > 0.02, changed          # and the CRF changed something visible


def test_errors_name_the_layer():
    expect_net_error(lambda: build("MultiStageMeanfield", {"multi_stage_meanfield_param": {
        "num_iterations": 1}}, [(1, 3, 4, 4)] * 2 + [(1, 3, 4, 4)]), "num_iterations", "1")
    expect_net_error(lambda: build("MultiStageMeanfield", {"multi_stage_meanfield_param": {
        "num_iterations": 2, "spatial_filter_weights_str": "1 2"}},
        [(1, 3, 4, 4)] * 2 + [(1, 3, 4, 4)]),
        "spatial_filter_weights_str", "3 labels")
    expect_net_error(lambda: build("MultiStageMeanfield", {"multi_stage_meanfield_param": {
        "num_iterations": 2}}, [(1, 3, 4, 4), (1, 3, 4, 5), (1, 3, 4, 4)]), "Q0")


def test_absent_fields_take_crfrnns_proto_defaults():
    layer, _ = build("MultiStageMeanfield", {"multi_stage_meanfield_param": {
        "num_iterations": 2}}, [(1, 3, 4, 4)] * 2 + [(1, 3, 4, 4)])
    assert layer.thetas == (10.0, 10.0, 10.0)
    assert torch.equal(layer.blobs[0][0, 0], torch.eye(3))
    assert torch.equal(layer.blobs[1][0, 0], torch.eye(3))
    assert torch.equal(layer.blobs[2][0, 0], -torch.eye(3))


CRFRNN_FORM = """
name: "crfrnn_form"
layer { name: "input" type: "Input" top: "data" top: "coarse"
  input_param { shape { dim: 1 dim: 3 dim: 12 dim: 10 } shape { dim: 1 dim: 5 dim: 12 dim: 10 } } }
layer { type: 'Split' name: 'splitting'
  bottom: 'coarse' top: 'unary' top: 'Q0'
}
layer {
  name: "inference1"
  type: "MultiStageMeanfield"
  bottom: "unary"
  bottom: "Q0"
  bottom: "data"
  top: "pred"
  param { lr_mult: 10000 }
  param { lr_mult: 10000 }
  param { lr_mult: 1000 }
  multi_stage_meanfield_param {
    num_iterations: 10
    compatibility_mode: POTTS
    threshold: 2
    theta_alpha: 160
    theta_beta: 3
    theta_gamma: 3
    spatial_filter_weight: 3
    bilateral_filter_weight: 5
  }
}
"""


def test_net_in_crfrnn_form_builds_and_runs():
    net = dc.Net(CRFRNN_FORM, phase="TEST")
    img, scores = scene(1, 12, 10, 5, 9)
    net.forward(data=img, coarse=scores)
    assert tuple(net.blobs["pred"].shape) == (1, 5, 12, 10)
    assert [tuple(b.shape) for b in net.layers[net.layer_names.index("inference1")].blobs] == [(1, 1, 5, 5)] * 3


@pytest.mark.parametrize("name,phase", [("train", "TRAIN"), ("test", "TEST")])
def test_largefov_crfrnn_pair_builds(name, phase, tmp_path, monkeypatch):
    defines = voc_layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    path = os.path.join(os.path.dirname(__file__), "..", "prototxt", "DeepLab-LargeFOV-CRFRNN",
                        f"{name}.prototxt")
    net = dc.Net(path, phase=phase, device="meta", defines=defines)
    layer = net.layers[net.layer_names.index("inference1")]
    assert [tuple(b.shape) for b in layer.blobs] == [(1, 1, 21, 21)] * 3
    if phase == "TRAIN":
        assert tuple(net.blob_shapes["pred"][1:]) == (21, 321, 321)
