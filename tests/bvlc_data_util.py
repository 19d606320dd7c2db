"""Small stand-ins for the data BVLC's example files point at (LMDB / LevelDB folders, HDF5
lists, image lists, mean files), written where the files expect them under a root folder that
plays Caffe's root (the files' paths are relative to it), next to copies of the prototxts.

Records are random but seeded; labels are 0/1 (valid for every BVLC loss: 10-, 20- and
1000-class softmaxes, and the siamese net's binary similarity)."""
import io
import os
import shutil

import numpy as np
from PIL import Image

from deeplab_caffe.data.datum import datum_from_array, datum_from_encoded, encode_datum
from deeplab_caffe.data.db import Writer
from deeplab_caffe.io.blobs import blob_to_proto
from deeplab_caffe.proto.schema import get_schema
from deeplab_caffe.proto.wire_encode import encode

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                         "fixtures", "caffe", "bvlc_master"))
NUM_RECORDS = 3

# source -> (backend, (C, H, W), encoded)
DATABASES = {
    "examples/mnist/mnist_train_lmdb": ("LMDB", (1, 28, 28), False),
    "examples/mnist/mnist_test_lmdb": ("LMDB", (1, 28, 28), False),
    "examples/cifar10/cifar10_train_lmdb": ("LMDB", (3, 32, 32), False),
    "examples/cifar10/cifar10_test_lmdb": ("LMDB", (3, 32, 32), False),
    "examples/siamese/mnist_siamese_train_leveldb": ("LEVELDB", (2, 28, 28), False),
    "examples/siamese/mnist_siamese_test_leveldb": ("LEVELDB", (2, 28, 28), False),
    "examples/imagenet/ilsvrc12_train_lmdb": ("LMDB", (3, 256, 256), False),
    # convert_imageset --encoded, as many ImageNet LMDBs are made
    "examples/imagenet/ilsvrc12_val_lmdb": ("LMDB", (3, 256, 256), True),
}
MEAN_FILES = {"examples/cifar10/mean.binaryproto": (3, 32, 32),
              "data/ilsvrc12/imagenet_mean.binaryproto": (3, 256, 256)}
HDF5_LISTS = {"examples/hdf5_classification/data/train.txt": 2,
              "examples/hdf5_classification/data/test.txt": 1}
IMAGE_LISTS = ("data/flickr_style/train.txt", "data/flickr_style/test.txt")


def png_bytes(hwc_bgr):
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(hwc_bgr[:, :, ::-1])).save(buf, format="PNG")
    return buf.getvalue()


def write_database(path, backend, chw, encoded, rng):
    with Writer(path, backend) as w:
        for i in range(NUM_RECORDS):
            pixels = rng.integers(0, 256, chw).astype(np.uint8)
            datum = (datum_from_encoded(png_bytes(pixels.transpose(1, 2, 0)), i % 2) if encoded
                     else datum_from_array(pixels, i % 2))
            w.put(f"{i:08d}_img{i}.png", encode_datum(datum))


def write_mean(path, chw, rng):
    mean = rng.uniform(0, 255, (1,) + chw).astype(np.float32)
    with open(path, "wb") as f:
        f.write(encode(blob_to_proto(mean, legacy=True), get_schema("bvlc"), "BlobProto"))


def write_hdf5_list(path, num_files, rng):
    import h5py
    names = []
    for k in range(num_files):
        name = os.path.join(os.path.dirname(path), f"{os.path.basename(path)[:-4]}{k}.h5")
        with h5py.File(name, "w") as f:
            f["data"] = rng.normal(size=(7, 4)).astype(np.float32)
            f["label"] = (np.arange(7) % 2).astype(np.float32)
        names.append(name)
    with open(path, "w") as f:
        f.write("\n".join(names) + "\n")


def write_image_list(path, rng):
    folder = os.path.join(os.path.dirname(path), "images")
    os.makedirs(folder, exist_ok=True)
    lines = []
    for i in range(NUM_RECORDS):
        name = os.path.join(folder, f"{os.path.basename(path)[:-4]}_{i}.png")
        with open(name, "wb") as f:
            f.write(png_bytes(rng.integers(0, 256, (20 + i, 24, 3)).astype(np.uint8)))
        lines.append(f"{name} {i % 2}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def make_caffe_root(root, with_leveldb=True):
    """Copies of the fixture prototxts under ``root`` (models/, examples/) and the data they
    point at.  LevelDB sources are made only when ``with_leveldb`` (plyvel installed)."""
    for sub in ("models", "examples"):
        shutil.copytree(os.path.join(FIXTURES, sub), os.path.join(root, sub))
    rng = np.random.default_rng(1234)
    for rel, (backend, chw, encoded) in DATABASES.items():
        if backend == "LEVELDB" and not with_leveldb:
            continue
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        write_database(os.path.join(root, rel), backend, chw, encoded, rng)
    for rel, chw in MEAN_FILES.items():
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        write_mean(os.path.join(root, rel), chw, rng)
    cwd = os.getcwd()
    os.chdir(root)      # the lists hold paths relative to Caffe's root, as BVLC's do
    try:
        for rel, n in HDF5_LISTS.items():
            os.makedirs(os.path.dirname(rel), exist_ok=True)
            write_hdf5_list(rel, n, rng)
        for rel in IMAGE_LISTS:
            os.makedirs(os.path.dirname(rel), exist_ok=True)
            write_image_list(rel, rng)
    finally:
        os.chdir(cwd)
