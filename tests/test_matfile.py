"""MAT files as DeepLab's Caffe writes and reads them (io/matfile.py: Blob::ToMat / FromMat),
MatWrite's default output and the MatRead layer."""
import struct

import numpy as np
import pytest
import torch
from scipy.io import loadmat, savemat

from deeplab_caffe import Net
from deeplab_caffe.errors import CaffeError
from deeplab_caffe.io.matfile import feature_file, read_blob_mat, source_names, write_blob_mat
from layer_util import build, expect_net_error


def blob(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_file_bytes_are_caffe_memory(tmp_path):
    """matio writes the blob's N x C x H x W memory as is, with dims [W, H, C, N]: find both in
    the file, built element by element from the blob."""
    x = blob(2, 3, 4, 5, seed=1)
    write_blob_mat(tmp_path / "a.mat", x)
    raw = (tmp_path / "a.mat").read_bytes()
    assert raw.startswith(b"MATLAB 5.0 MAT-file")
    memory = b"".join(struct.pack("<f", float(x[n, c, h, w])) for n in range(2)
                      for c in range(3) for h in range(4) for w in range(5))
    assert memory in raw
    assert struct.pack("<4i", 5, 4, 3, 2) in raw
    assert b"data" in raw


def test_scipy_reads_matlab_indexing(tmp_path):
    x = blob(2, 3, 4, 5, seed=2)
    write_blob_mat(tmp_path / "a.mat", torch.from_numpy(x))
    data = loadmat(tmp_path / "a.mat")["data"]
    assert data.dtype == np.float32 and data.shape == (5, 4, 3, 2)
    for n, c, h, w in [(0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 2, 3), (1, 0, 3, 1)]:
        assert data[w, h, c, n] == x[n, c, h, w]


@pytest.mark.parametrize("shape,stored", [((1, 3, 4, 5), (1, 3, 4, 5)),
                                          ((2, 7), (2, 7, 1, 1)), ((6,), (6, 1, 1, 1))])
def test_round_trip(tmp_path, shape, stored):
    x = blob(*shape, seed=3)
    write_blob_mat(tmp_path / "a.mat", x)
    back = read_blob_mat(tmp_path / "a.mat")
    assert back.shape == stored and back.dtype == np.float32
    assert np.array_equal(back.reshape(shape), x)


def test_read_matlab_written_shapes_and_errors(tmp_path):
    # MATLAB drops trailing singleton dims: a W x H x C array is one image (num 1).
    arr = blob(5, 4, 3, seed=4)
    savemat(tmp_path / "m.mat", {"data": arr})
    back = read_blob_mat(tmp_path / "m.mat")
    assert back.shape == (1, 3, 4, 5) and back[0, 2, 1, 4] == arr[4, 1, 2]
    savemat(tmp_path / "d.mat", {"data": arr.astype(np.float64)})
    with pytest.raises(CaffeError, match="class single"):
        read_blob_mat(tmp_path / "d.mat")
    savemat(tmp_path / "n.mat", {"other": arr})
    with pytest.raises(CaffeError, match="'data' not present"):
        read_blob_mat(tmp_path / "n.mat")
    with pytest.raises(CaffeError, match="missing.mat"):
        read_blob_mat(tmp_path / "missing.mat")
    with pytest.raises(CaffeError, match="at most 4 axes"):
        write_blob_mat(tmp_path / "5d.mat", blob(1, 1, 1, 1, 2))


def test_names():
    assert feature_file("out/fc8/", "2007_000033", 0) == "out/fc8/2007_000033_blob_0.mat"


def test_source_names(tmp_path):
    src = tmp_path / "ids.txt"
    src.write_text("a.png x\n\nbb.png\n")
    assert source_names(src, 4) == ["a", "bb"]
    with pytest.raises(CaffeError, match="line 1: strip 5 removes all of 'a.png'"):
        source_names(src, 5)


def write_images(tmp_path, ids, shape=(1, 2, 3, 4)):
    out = {}
    for k, name in enumerate(ids):
        out[name] = blob(*shape, seed=10 + k)
        write_blob_mat(feature_file(str(tmp_path) + "/", name, 0), out[name])
    return out


def test_mat_read_batches_cycle_through_the_list(tmp_path):
    images = write_images(tmp_path, ["a", "b", "c"])
    (tmp_path / "ids.txt").write_text("a.jpg\nb.jpg\nc.jpg\n")
    prm = {"mat_read_param": {"prefix": str(tmp_path) + "/", "source": str(tmp_path / "ids.txt"),
                              "strip": 4, "batch_size": 2}}
    layer, shapes = build("MatRead", prm, [], top=("feat",))
    assert shapes == [(2, 2, 3, 4)]
    for expect in (["a", "b"], ["c", "a"], ["b", "c"]):
        (top,) = layer()
        assert top.dtype == torch.float32
        assert np.array_equal(top.numpy(), np.concatenate([images[n] for n in expect]))


def test_mat_read_without_source_and_errors(tmp_path):
    images = write_images(tmp_path, ["iter_0", "iter_1"])
    layer, shapes = build("MatRead", {"mat_read_param": {"prefix": str(tmp_path) + "/"}}, [],
                          top=("feat",))
    assert shapes == [(1, 2, 3, 4)]
    assert np.array_equal(layer()[0].numpy(), images["iter_0"])
    assert np.array_equal(layer()[0].numpy(), images["iter_1"])
    expect_net_error(layer, "iter_2_blob_0.mat")         # no list: no wrapping
    write_blob_mat(str(tmp_path / "iter_2_blob_0.mat"), blob(1, 2, 3, 5))
    expect_net_error(layer, "shape (2, 3, 5)", "(2, 3, 4)")
    write_blob_mat(str(tmp_path / "two_blob_0.mat"), blob(2, 2, 3, 4))
    (tmp_path / "two.txt").write_text("two\n")
    expect_net_error(lambda: build("MatRead", {"mat_read_param": {
        "prefix": str(tmp_path) + "/", "source": str(tmp_path / "two.txt")}}, [],
        top=("f",)), "num 2")
    expect_net_error(lambda: build("MatRead", {"mat_read_param": {"prefix": "p",
                                                                   "batch_size": 0}}, [],
                                   top=("f",)), "batch_size must be positive")
    expect_net_error(lambda: build("MatRead", {"mat_read_param": {}}, [], top=("f",)),
                     "needs mat_read_param { prefix }")
    (tmp_path / "empty.txt").write_text("\n")
    expect_net_error(lambda: build("MatRead", {"mat_read_param": {
        "prefix": "p", "source": str(tmp_path / "empty.txt")}}, [], top=("f",)),
        "lists no names")


def test_mat_write_then_mat_read_in_deeplab_v1_nets(tmp_path):
    """A DeepLab v1 test net writes its scores with MAT_WRITE; a second net reads them back with
    MAT_READ, image by image."""
    (tmp_path / "ids.txt").write_text("img1\nimg2\n")
    writer = f"""name: "w"
input: "data" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4
layers {{ name: "out" type: MAT_WRITE bottom: "data"
  mat_write_param {{ prefix: "{tmp_path}/feat/" source: "{tmp_path}/ids.txt" }} }}
"""
    reader = f"""name: "r"
layers {{ name: "in" type: MAT_READ top: "scores"
  mat_read_param {{ prefix: "{tmp_path}/feat/" source: "{tmp_path}/ids.txt" batch_size: 1 }} }}
"""
    xs = [blob(1, 2, 3, 4, seed=s) for s in (20, 21)]
    wnet = Net(writer)
    for x in xs:
        wnet.forward(data=x)
    assert sorted(p.name for p in (tmp_path / "feat").iterdir()) == \
        ["img1_blob_0.mat", "img2_blob_0.mat"]
    rnet = Net(reader)
    for x in xs:
        assert np.array_equal(rnet.forward()["scores"].numpy(), x)
