"""The shipped model zoo (prototxt/) for the tests: where the files are, the DeepLab v1 facts
each variant must show (written out independently from the facts and the paper's Table 2), the
synthetic VOC the data layers read, and narrowed copies of the nets for CPU forwards."""
import os
import re

import pytest

from deeplab_caffe import Net
from deeplab_caffe.data.synthetic import make_synthetic_voc

ZOO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "prototxt")
EXP = "voc12"                       # relative, as DeepLab's run_pascal.sh used it
NET_FILES = ("train.prototxt", "test.prototxt", "test_crf.prototxt")
VGG_WIDTHS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
CONVS = [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
         for i in range(1, n + 1)]

# Facts (reference/deeplab_v1_facts.md 1, 3, 4 and paper Table 2), written out independently.
DL_POOLS = [(2, 2, 1), (2, 2, 1), (2, 2, 1), (2, 1, 0), (3, 1, 1)]     # (kernel, stride, pad)
LF_POOLS = [(3, 2, 1), (3, 2, 1), (3, 2, 1), (3, 1, 1), (3, 1, 1)]
V = {
    "DeepLab": dict(pools=DL_POOLS, pool5a=False, fc6=(4, 4, 6, 4096), fc7=4096,
                    fc8="fc8_pascal", crop=(306, 514), batch=20, shrink_pad=-1,
                    mult=(1, 1, 0), mult8=(10, 1, 0), crf=(5, 50, 10), msc=False,
                    strict_train=True, scores=(39, 67), params=65.1),
    "DeepLab-7x7": dict(pools=DL_POOLS, pool5a=False, fc6=(7, 4, 12, 4096), fc7=4096,
                        fc8="fc8_voc12", crop=(306, 514), batch=20, shrink_pad=-1,
                        mult=(1, 1, 0), mult8=(10, 1, 0), crf=(5, 50, 10), msc=False,
                        strict_train=True, scores=(39, 67), params=134.3),
    "DeepLab-4x4": dict(pools=DL_POOLS, pool5a=False, fc6=(4, 8, 12, 4096), fc7=4096,
                        fc8="fc8_voc12", crop=(306, 514), batch=20, shrink_pad=-1,
                        mult=(1, 1, 0), mult8=(10, 1, 0), crf=(5, 50, 10), msc=False,
                        strict_train=True, scores=(39, 67), params=65.1),
    "DeepLab-LargeFOV": dict(pools=LF_POOLS, pool5a=True, fc6=(3, 12, 12, 1024), fc7=1024,
                             fc8="fc8_voc12", crop=(321, 513), batch=30, shrink_pad=0,
                             mult=(1, 1, 0), mult8=(10, 1, 0), crf=(4, 121, 5), msc=False,
                             strict_train=False, scores=(41, 65), params=20.5),
    "DeepLab-MSc": dict(pools=LF_POOLS, pool5a=False, fc6=(4, 4, 6, 4096), fc7=4096,
                        fc8="fc8_pascal", crop=(321, 513), batch=20, shrink_pad=0,
                        mult=(0, 0, 0), mult8=(1, 1, 0), crf=(3, 95, 3), msc=True,
                        strict_train=True, scores=(41, 65), params=None),
    "DeepLab-MSc-LargeFOV": dict(pools=LF_POOLS, pool5a=True, fc6=(3, 12, 12, 1024), fc7=1024,
                                 fc8="fc8_voc12", crop=(321, 513), batch=30, shrink_pad=0,
                                 mult=(0, 1, 0), mult8=(0, 1, 0), crf=(4, 83, 5), msc=True,
                                 strict_train=True, scores=(41, 65), params=None),
}
BRANCHES = [("data", 8, 1), ("pool1", 4, 2), ("pool2", 2, 4), ("pool3", 1, 8), ("pool4", 1, 8)]


@pytest.fixture(scope="module")
def voc_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("zoo")
    make_synthetic_voc(str(base / EXP), num_train=2, num_val=1, size=64, seed=3)
    return base


@pytest.fixture
def defines(voc_dir, monkeypatch):
    monkeypatch.chdir(voc_dir)      # ${EXP} is relative to the working directory, as in Caffe
    return {"NET_ID": "zoo", "EXP": EXP, "DATA_ROOT": str(voc_dir / EXP), "NUM_LABELS": "21",
            "TRAIN_SET": "train_aug", "TEST_SET": "val",
            "FEATURE_DIR": str(voc_dir / "features")}


def path(variant, name):
    return os.path.join(ZOO, variant, name)


def by_name(spec):
    return {layer.name: layer for layer in spec.layers}


def conv(layer):
    p = layer.message.get("convolution_param")
    one = lambda f, d: (p.getlist(f) or [d])[0]   # noqa: E731
    return (p.get("num_output"), one("kernel_size", None), one("dilation", 1), one("pad", 0),
            one("stride", 1))


def mults(layer):
    return [(ps.lr_mult, ps.decay_mult) for ps in layer.param]


def build(variant, fname, phase, defines):
    return Net(path(variant, fname), phase=phase, device="meta", defines=defines)


def narrowed(variant, fname, batch=1):
    """The file's text with every num_output / 32 (at least 4; NUM_LABELS kept) and batch_size
    ``batch``: the same spatial path at a CPU-friendly cost."""
    text = open(path(variant, fname)).read()
    text = re.sub(r"num_output: (\d+)", lambda m: f"num_output: {max(4, int(m.group(1)) // 32)}",
                  text)
    return re.sub(r"batch_size: \d+", f"batch_size: {batch}", text)
