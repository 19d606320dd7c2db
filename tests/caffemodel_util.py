"""Shared by the .caffemodel tests: where the real Caffe fixtures are, and a synthetic DeepLab v1
net (every DeepLab-only number that clashes with BVLC's, blobs in legacy 4-D)."""
import os

import numpy as np
import pytest

from deeplab_caffe.io.blobs import blob_to_proto
from deeplab_caffe.proto import wire
from deeplab_caffe.proto.message import Message
from deeplab_caffe.proto.schema import get_schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "..", "shared", "fixtures", "caffe")
needs_fixtures = pytest.mark.skipif(not os.path.isdir(FIX), reason="no ../shared/fixtures/caffe")


def L(**fields):
    return Message("LayerParameter", fields)


def dl1_net(first_type="IMAGE_SEG_DATA", seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    fc = rng.standard_normal((5, 4)).astype(np.float32)
    first = L(name="data", type=first_type, top=["data", "label", "data_dim"],
              include=[Message("NetStateRule", {"phase": "TRAIN"})],
              image_data_param=Message("ImageDataParameter", {
                  "source": "train_aug.txt", "batch_size": 30, "label_type": "PIXEL",
                  "ignore_label": 255}),
              transform_param=Message("TransformationParameter", {
                  "mean_value": [104.008, 116.669, 122.675], "crop_size": 321, "mirror": True}))
    layers = [
        first,
        L(name="fc6", type="CONVOLUTION", bottom=["data"], top=["fc6"], blobs_lr=[1.0, 2.0],
          weight_decay=[1.0, 0.0], strict_dim=False,
          convolution_param=Message("ConvolutionParameter", {
              "num_output": 4, "kernel_size": 3, "pad": 12, "hole": 12}),
          blobs=[blob_to_proto(w, legacy=True), blob_to_proto(b, legacy=True)]),
        L(name="fc7", type="INNER_PRODUCT", bottom=["fc6"], top=["fc7"],
          inner_product_param=Message("InnerProductParameter", {"num_output": 5}),
          blobs=[blob_to_proto(fc, legacy=True)]),
        L(name="label_shrink", type="INTERP", bottom=["label"], top=["label_shrink"],
          interp_param=Message("InterpParameter", {"shrink_factor": 8, "pad_beg": -1})),
        L(name="loss", type="SOFTMAX_LOSS", bottom=["fc7", "label_shrink"], top=["loss"],
          softmaxloss_param=Message("SoftmaxLossParameter", {"ignore_label": [255, -1]})),
        L(name="accuracy", type="SEG_ACCURACY", bottom=["fc7", "label_shrink"], top=["acc"],
          seg_accuracy_param=Message("SegAccuracyParameter", {"ignore_label": [255]})),
    ]
    return Message("NetParameter", {"name": "deeplab", "layers": layers}), (w, b, fc)


def dl1_bytes(**kw):
    msg, arrays = dl1_net(**kw)
    return wire.encode(msg, get_schema("deeplab_v1")), arrays
