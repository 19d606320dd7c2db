"""The Caffe DenseCRF layer (DeepLab v1's DENSE_CRF): parameters, bottoms, colour features from
the data blob as it comes (DeepLab's SetupPairwiseFunctions), data_dim as the C++ reads it, zero
outside it, errors naming the layer."""
import torch

import deeplab_caffe  # noqa: F401
from deeplab_caffe.crf import dense_crf
from deeplab_caffe.data.transform import DEEPLAB_MEAN_BGR

from layer_util import build, expect_net_error, make_layer
from test_crf_meanfield import scene

PARAMS = {"dense_crf_param": {"max_iter": 10, "pos_w": [3.0], "pos_xy_std": [3.0],
                              "bi_w": [4.0], "bi_xy_std": [121.0], "bi_rgb_std": [5.0]}}


def test_forward_uses_the_mean_subtracted_blob_as_it_comes():
    img, scores = scene(2, 18, 22, 4, 0)                   # img: 0..255 integers, BGR order
    data = img - torch.tensor(DEEPLAB_MEAN_BGR).view(1, 3, 1, 1).float()
    data_dim = torch.tensor([[18, 22], [11, 15]], dtype=torch.float32).view(2, 1, 1, 2)
    layer, tops = build("DenseCRF", PARAMS, [scores.shape, data_dim.shape, data.shape])
    assert tops == [tuple(scores.shape)]
    (q,) = layer(scores, data_dim, data)
    # The C++ divides the blob itself by bi_rgb_std: features = data / 5, no mean added back.
    expect = dense_crf(scores, data, pos_w=3, pos_xy_std=3, bi_w=4, bi_xy_std=121, bi_rgb_std=5,
                       max_iter=10, data_dim=data_dim, normalization="NORMALIZE_AFTER")
    assert torch.equal(q, expect)
    # ... which is not the same as the 8-bit image (the lattice is not translation-invariant).
    restored = dense_crf(scores, img, pos_w=3, pos_xy_std=3, bi_w=4, bi_xy_std=121,
                         bi_rgb_std=5, max_iter=10, data_dim=data_dim,
                         normalization="NORMALIZE_AFTER")
    assert not torch.equal(q, restored)
    assert float(q[1, :, 11:].abs().sum()) == 0 and float(q[1, :, :, 15:].abs().sum()) == 0
    torch.testing.assert_close(q[1, :, :11, :15].sum(0), torch.ones(11, 15))


def test_data_dim_at_least_the_blob_uses_the_padded_size():
    img, scores = scene(2, 12, 14, 3, 2)
    data = img - 100.0
    layer, _ = build("DenseCRF", PARAMS, [scores.shape, (2, 1, 1, 2), data.shape])
    big = torch.tensor([[30.0, 40.0], [12.0, 14.0]]).view(2, 1, 1, 2)
    exact = torch.tensor([[12.0, 14.0], [12.0, 14.0]]).view(2, 1, 1, 2)
    assert torch.equal(layer(scores, big, data)[0], layer(scores, exact, data)[0])
    # One axis larger, the other smaller: the C++ would read past the blob; an error here.
    mixed = torch.tensor([[30.0, 10.0], [12.0, 14.0]]).view(2, 1, 1, 2)
    expect_net_error(lambda: layer(scores, mixed, data), "data_dim[0]", "outside")


def test_spatial_only_without_image_and_defaults():
    _, scores = scene(1, 10, 12, 3, 1)
    dd = torch.tensor([[10.0, 12.0]]).view(1, 1, 1, 2)
    layer, _ = build("DenseCRF", {"dense_crf_param": {"pos_w": [3.0], "pos_xy_std": [2.0]}},
                     [scores.shape, dd.shape])
    assert layer.max_iter == 10
    (q,) = layer(scores, dd)
    torch.testing.assert_close(q, dense_crf(scores, None, pos_w=3, pos_xy_std=2, bi_w=[],
                                            bi_xy_std=[], bi_rgb_std=[], max_iter=10))


def test_errors_name_the_layer():
    s, d, i = (1, 4, 8, 8), (1, 1, 1, 2), (1, 3, 8, 8)
    expect_net_error(lambda: build("DenseCRF", PARAMS, [s, d]), "bi_w", "bottom[2]")
    bad = {"dense_crf_param": dict(PARAMS["dense_crf_param"], bi_xy_std=[0.0])}
    expect_net_error(lambda: build("DenseCRF", bad, [s, d, i]), "bi_xy_std")
    bad = {"dense_crf_param": dict(PARAMS["dense_crf_param"], pos_w=[1.0, 2.0])}
    expect_net_error(lambda: build("DenseCRF", bad, [s, d, i]), "pos_w")
    expect_net_error(lambda: build("DenseCRF", PARAMS, [(1, 1, 8, 8), d, i]), "L >= 2")
    expect_net_error(lambda: build("DenseCRF", PARAMS, [s, d, (1, 3, 7, 8)]), "image")
    layer, _ = build("DenseCRF", PARAMS, [s, d, i])
    scores = torch.zeros(s)
    scores[0, 0, 0, 0] = float("nan")
    expect_net_error(lambda: layer(scores, torch.tensor([8.0, 8.0]).view(d), torch.zeros(i)),
                     "non-finite")


def test_crf_layer_reads_the_data_layers_blob(tmp_path):
    from deeplab_caffe.data.synthetic import make_synthetic_voc
    import deeplab_caffe as dc
    root = tmp_path / "syn"
    make_synthetic_voc(str(root), num_train=2, num_val=2, size=(40, 40), num_classes=3, seed=0)
    text = f"""
    layers {{ name: "data" type: IMAGE_SEG_DATA top: "data" top: "label" top: "data_dim"
      image_data_param {{ root_folder: "{root}" source: "{root}/list/val.txt" batch_size: 1
                          label_type: PIXEL }}
      transform_param {{ mean_value: 10 mean_value: 20 mean_value: 30 crop_size: 41 }} }}
    layers {{ name: "score" type: CONVOLUTION bottom: "data" top: "score"
      convolution_param {{ num_output: 3 kernel_size: 1 }} }}
    layers {{ name: "crf" type: DENSE_CRF bottom: "score" bottom: "data_dim" bottom: "data"
      top: "crf" dense_crf_param {{ max_iter: 2 pos_w: 3 pos_xy_std: 3 bi_w: 4 bi_xy_std: 20
                                    bi_rgb_std: 5 }} }}
    """
    net = dc.Net(text, phase="TEST")
    assert net.blob_transforms["data"].mean_value == (10.0, 20.0, 30.0)
    assert net.blob_transforms["score"] is None and net.blob_transforms["label"] is None
    net.forward()
    expect = dense_crf(net.blobs["score"], net.blobs["data"], pos_w=3, pos_xy_std=3, bi_w=4,
                       bi_xy_std=20, bi_rgb_std=5, max_iter=2, data_dim=net.blobs["data_dim"],
                       normalization="NORMALIZE_AFTER")
    assert torch.equal(net.blobs["crf"], expect)
