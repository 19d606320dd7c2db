"""The DeepLab v1 authors' configs (../shared/fixtures/deeplab_v1; tests skip when absent) and a
tiny VOC-style layout that fills their ${...} placeholders, so the files build unmodified."""
import os

import numpy as np
import pytest
from PIL import Image

DL1 = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "deeplab_v1",
                   "config")


def config(*parts):
    path = os.path.join(DL1, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} absent (../shared/fixtures/deeplab_v1)")
    return path


def voc_layout(root, size=(45, 53)):
    """One image and label under ``root``, every list the configs name; returns the defines
    (run from ``root``: the configs' list paths are relative)."""
    rng = np.random.default_rng(0)
    os.makedirs(root / "data" / "JPEGImages", exist_ok=True)
    os.makedirs(root / "data" / "SegmentationClassAug", exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(
        root / "data" / "JPEGImages" / "a.png")
    Image.fromarray(rng.integers(0, 21, size, dtype=np.uint8)).save(
        root / "data" / "SegmentationClassAug" / "a.png")
    os.makedirs(root / "voc12" / "list", exist_ok=True)
    for s in ("train", "train_aug", "val"):
        (root / "voc12" / "list" / f"{s}.txt").write_text(
            "/JPEGImages/a.png /SegmentationClassAug/a.png\n")
        (root / "voc12" / "list" / f"{s}_id.txt").write_text("a\n")
    return {"NET_ID": "net", "DATA_ROOT": str(root / "data"), "EXP": "voc12",
            "TRAIN_SET": "train_aug", "TEST_SET": "val", "NUM_LABELS": "21",
            "FEATURE_DIR": str(root / "features")}
