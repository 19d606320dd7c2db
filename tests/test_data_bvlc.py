"""BVLC's data pipeline: Datum, DataTransformer, Data (LMDB / LevelDB), ImageData, HDF5Data /
HDF5Output, convert_imageset and compute_image_mean.  References are written here: Caffe's
loops over (c, h, w) and its wire bytes, not our code."""
import io
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from deeplab_caffe.cli import compute_image_mean, convert_imageset
from deeplab_caffe.data.data_transformer import DataTransformer, read_binaryproto
from deeplab_caffe.data.datum import (datum_array, datum_from_array, datum_from_encoded,
                                      decode_datum, encode_datum)
from deeplab_caffe.data.db import Reader, Writer
from deeplab_caffe.errors import CaffeError, NetError, PrototxtError
from deeplab_caffe.net import Net
from deeplab_caffe.proto.message import Message

try:
    import plyvel  # noqa: F401
    HAVE_PLYVEL = True
except ImportError:
    HAVE_PLYVEL = False
BACKENDS = ["LMDB", pytest.param("LEVELDB", marks=pytest.mark.skipif(
    not HAVE_PLYVEL, reason="LevelDB needs the optional package plyvel"))]


def transform_param(**fields):
    return Message("TransformationParameter", fields)


def png(hwc_rgb):
    buf = io.BytesIO()
    Image.fromarray(hwc_rgb).save(buf, format="PNG")
    return buf.getvalue()


# -- Datum ------------------------------------------------------------------------------------
def test_datum_wire_bytes_match_caffe():
    # Datum{channels: 1 height: 1 width: 2 data: "\x01\x02" label: 3}, tag by tag.
    wire = bytes([0x08, 1, 0x10, 1, 0x18, 2, 0x22, 2, 1, 2, 0x28, 3])
    d = decode_datum(wire)
    assert (d["channels"], d["height"], d["width"], d["label"]) == (1, 1, 2, 3)
    assert datum_array(d).tolist() == [[[1, 2]]]
    assert encode_datum(d) == wire


def test_datum_float_data_and_encoded():
    values = np.arange(12, dtype=np.float32).reshape(3, 2, 2) / 7
    back = datum_array(decode_datum(encode_datum(datum_from_array(values, 5))))
    assert back.dtype == np.float32 and np.array_equal(back, values)
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3)).astype(np.uint8)
    enc = decode_datum(encode_datum(datum_from_encoded(png(rgb), 1)))
    assert enc["encoded"] is True
    # OpenCV's imdecode gives BGR, (C, H, W) here
    assert np.array_equal(datum_array(enc), rgb[:, :, ::-1].transpose(2, 0, 1))
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 9, np.uint8)], axis=2)
    bgra = datum_array(datum_from_encoded(png(rgba)))
    assert np.array_equal(bgra, rgba[:, :, [2, 1, 0, 3]].transpose(2, 0, 1))
    assert datum_array(datum_from_encoded(png(rgba)), force_color=True).shape == (3, 4, 5)
    grey = datum_array(enc, force_gray=True)
    assert grey.shape == (1, 4, 5)
    with pytest.raises(CaffeError, match="force_color and force_gray"):
        datum_array(enc, force_color=True, force_gray=True)


def test_datum_size_mismatch_is_an_error():
    bad = Message("Datum", {"channels": 1, "height": 2, "width": 2, "data": b"abc"})
    with pytest.raises(CaffeError, match="3 bytes of data for channels 1, height 2, width 2"):
        datum_array(bad)


# -- DataTransformer --------------------------------------------------------------------------
def caffe_transform(x, crop, mirror, phase, mean, scale, rng):
    """data_transformer.cpp's loop, index by index."""
    c_n, h_n, w_n = x.shape
    do_mirror = mirror and rng.integers(0, 2)
    h_off = w_off = 0
    height, width = h_n, w_n
    if crop:
        height = width = crop
        if phase == "TRAIN":
            h_off = rng.integers(0, h_n - crop + 1)
            w_off = rng.integers(0, w_n - crop + 1)
        else:
            h_off, w_off = (h_n - crop) // 2, (w_n - crop) // 2
    out = np.zeros((c_n, height, width), np.float32)
    for c in range(c_n):
        for h in range(height):
            for w in range(width):
                tw = width - 1 - w if do_mirror else w
                v = np.float32(x[c, h_off + h, w_off + w])
                m = 0 if mean is None else (mean[c, h_off + h, w_off + w] if mean.ndim == 3
                                            else mean[c])
                out[c, h, tw] = (v - np.float32(m)) * np.float32(scale)
    return out


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
@pytest.mark.parametrize("mean_kind", ["none", "file", "value", "one_value"])
def test_data_transformer_matches_caffe_loop(tmp_path, phase, mean_kind):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (3, 7, 6)).astype(np.uint8)
    fields = dict(crop_size=4, mirror=True, scale=0.5)
    mean = None
    if mean_kind == "file":
        mean = rng.uniform(0, 255, (3, 7, 6)).astype(np.float32)
        compute_image_mean.write_binaryproto(str(tmp_path / "m.binaryproto"), mean[None])
        fields["mean_file"] = str(tmp_path / "m.binaryproto")
    elif mean_kind == "value":
        mean = np.array([10.5, 20.0, 30.25], np.float32)
        fields["mean_value"] = list(mean)
    elif mean_kind == "one_value":
        mean = np.full(3, 7.0, np.float32)
        fields["mean_value"] = [7.0]
    t = DataTransformer(transform_param(**fields), phase, np.random.default_rng(9))
    ref_rng = np.random.default_rng(9)
    for _ in range(4):     # successive samples draw successive numbers
        got = t(x)
        want = caffe_transform(x, 4, True, phase, mean, 0.5, ref_rng)
        np.testing.assert_array_equal(got, want)


def test_data_transformer_errors(tmp_path):
    compute_image_mean.write_binaryproto(str(tmp_path / "m.binaryproto"),
                                         np.zeros((1, 3, 5, 5), np.float32))
    both = transform_param(mean_file=str(tmp_path / "m.binaryproto"), mean_value=[1.0])
    with pytest.raises(CaffeError, match="both mean_file and mean_value"):
        DataTransformer(both, "TRAIN")
    t = DataTransformer(transform_param(mean_file=str(tmp_path / "m.binaryproto")), "TEST")
    with pytest.raises(CaffeError, match=r"mean_file has shape \(3, 5, 5\), the data is"):
        t(np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(CaffeError, match="crop_size 9 is larger than the 4x4 input"):
        DataTransformer(transform_param(crop_size=9), "TEST")(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(CaffeError, match="1 mean_value or as many as channels"):
        DataTransformer(transform_param(mean_value=[1, 2]), "TEST")(np.zeros((3, 2, 2)))


# -- Data -------------------------------------------------------------------------------------
def write_db(path, records, backend="LMDB"):
    with Writer(str(path), backend) as w:
        for key, datum in records:
            w.put(key, encode_datum(datum))


def data_net(source, batch, backend="LMDB", transform="", tops=2, phase="TEST"):
    top = 'top: "data" top: "label"' if tops == 2 else 'top: "data"'
    return Net(f'layer {{ name: "d" type: "Data" {top} data_param {{ source: "{source}" '
               f'backend: {backend} batch_size: {batch} }} transform_param {{ {transform} }} }}',
               phase=phase, device="cpu")


@pytest.mark.parametrize("backend", BACKENDS)
def test_data_layer_reads_in_key_order_and_wraps(tmp_path, backend):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (2, 3, 4)).astype(np.uint8) for _ in range(5)]
    keys = ["00000003_c", "00000000_a", "00000004_e", "00000001_x", "00000002_b"]
    order = sorted(range(5), key=lambda i: keys[i])
    write_db(tmp_path / "db", [(keys[i], datum_from_array(images[i], 10 + i))
                               for i in range(5)], backend)
    net = data_net(tmp_path / "db", 3, backend, "scale: 2")
    seen = []
    for _ in range(3):
        net.forward()
        assert net.blobs["data"].shape == (3, 2, 3, 4)
        for d, lab in zip(net.blobs["data"], net.blobs["label"]):
            seen.append((d.numpy(), int(lab)))
    expect = [order[k % 5] for k in range(9)]
    for (d, lab), i in zip(seen, expect):
        assert lab == 10 + i
        np.testing.assert_array_equal(d, images[i].astype(np.float32) * 2)
    net.layers[0].close()


def test_data_layer_encoded_float_and_one_top(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (6, 5, 3)).astype(np.uint8)
    write_db(tmp_path / "enc", [("0", datum_from_encoded(png(rgb), 1))])
    net = data_net(tmp_path / "enc", 2, tops=1, transform="force_gray: false")
    out = net.forward()
    assert list(out) == ["data"]
    want = rgb[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
    np.testing.assert_array_equal(net.blobs["data"][1].numpy(), want)
    values = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 2, 2)
    write_db(tmp_path / "flt", [("0", datum_from_array(values, 0))])
    net = data_net(tmp_path / "flt", 1, transform="mean_value: 0.5 mean_value: -0.5")
    net.forward()
    np.testing.assert_allclose(net.blobs["data"][0].numpy(),
                               values - np.array([0.5, -0.5], np.float32)[:, None, None])


def test_v1_data_param_transform_fields_are_upgraded(tmp_path):
    # V1 files carry scale/crop_size/mirror/mean_file in data_param (UpgradeNetDataTransformation)
    x = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    write_db(tmp_path / "db", [("0", datum_from_array(x, 0))])
    v1 = (f'layers {{ name: "d" type: DATA top: "data" top: "label" data_param {{ source: '
          f'"{tmp_path / "db"}" backend: LMDB batch_size: 1 scale: 0.25 crop_size: 2 }} }}')
    net = Net(v1, phase="TEST", device="cpu")
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"][0].numpy(),
                                  x[:, 1:3, 1:3].astype(np.float32) * 0.25)
    net.layers[0].close()


def test_data_layer_prefetch_is_deterministic_with_seed(tmp_path):
    rng = np.random.default_rng(2)
    write_db(tmp_path / "db", [(f"{i}", datum_from_array(
        rng.integers(0, 256, (1, 8, 8)).astype(np.uint8), i)) for i in range(4)])
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        net = data_net(tmp_path / "db", 2, transform="crop_size: 5 mirror: true",
                       phase="TRAIN")
        runs.append([net.forward() and net.blobs["data"].clone() for _ in range(3)])
        net.layers[0].close()
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_prefetch_thread_ends_with_its_net(tmp_path):
    import gc
    import threading
    write_db(tmp_path / "db", [("0", datum_from_array(np.zeros((1, 2, 2), np.uint8)))])
    net = data_net(tmp_path / "db", 1)
    net.forward()
    thread = net.layers[0]._thread
    assert thread.is_alive()
    del net
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert not any(t.name == "prefetch:d" and t is thread for t in threading.enumerate())


def test_data_layer_errors(tmp_path, monkeypatch):
    with pytest.raises(NetError, match="layer 'd'.*no LMDB database there"):
        data_net(tmp_path / "nothing", 1)
    write_db(tmp_path / "db", [("0", datum_from_array(np.zeros((1, 2, 2), np.uint8)))])
    with pytest.raises(NetError, match="batch_size must be positive"):
        data_net(tmp_path / "db", 0)
    monkeypatch.setitem(sys.modules, "lmdb", None)
    with pytest.raises(NetError, match="needs the Python package 'lmdb'"):
        data_net(tmp_path / "db", 1)


def test_window_data_is_a_clear_error():
    with pytest.raises(NetError, match="'WindowData' is a BVLC Caffe layer type that "
                                       "deeplab_caffe does not implement"):
        Net('layer { name: "w" type: "WindowData" top: "d" top: "l" }', device="cpu")
    with pytest.raises(PrototxtError, match="'window_data_param' is a BVLC Caffe field"):
        Net('layer { name: "w" type: "WindowData" top: "d" window_data_param { } }')


# -- ImageData --------------------------------------------------------------------------------
def write_images(folder, sizes):
    rng = np.random.default_rng(4)
    names, images = [], []
    for i, (h, w) in enumerate(sizes):
        rgb = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        name = f"img {i}.png"      # a space: master splits the line at its last space
        Image.fromarray(rgb).save(os.path.join(folder, name))
        names.append(name)
        images.append(rgb[:, :, ::-1].transpose(2, 0, 1))
    return names, images


def image_data_net(list_file, root, batch, extra="", transform="", phase="TEST"):
    return Net(f'layer {{ name: "d" type: "ImageData" top: "data" top: "label" '
               f'image_data_param {{ source: "{list_file}" root_folder: "{root}" '
               f'batch_size: {batch} {extra} }} transform_param {{ {transform} }} }}',
               phase=phase, device="cpu")


def test_image_data_list_order_labels_and_root_folder(tmp_path):
    names, images = write_images(tmp_path, [(5, 6)] * 3)
    (tmp_path / "list.txt").write_text("".join(f"{n} {7 * i}\n" for i, n in enumerate(names)))
    net = image_data_net(tmp_path / "list.txt", f"{tmp_path}/", 2, transform="scale: 0.5")
    got = []
    for _ in range(3):
        net.forward()
        got += list(zip(net.blobs["data"].numpy(), net.blobs["label"].tolist()))
    for k, (d, lab) in enumerate(got):
        assert lab == 7 * (k % 3)
        np.testing.assert_array_equal(d, images[k % 3].astype(np.float32) * 0.5)
    net.layers[0].close()


def test_image_data_shuffle_resize_and_grey(tmp_path):
    names, _ = write_images(tmp_path, [(5, 6), (9, 4), (3, 3), (8, 8)])
    (tmp_path / "list.txt").write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    net = image_data_net(tmp_path / "list.txt", f"{tmp_path}/", 4,
                         "shuffle: true new_height: 6 new_width: 7 is_color: false")
    net.forward()
    assert net.blobs["data"].shape == (4, 1, 6, 7)
    labels = sorted(int(v) for v in net.blobs["label"])
    assert labels == [0, 1, 2, 3]       # one epoch holds every entry once
    net.layers[0].close()
    with pytest.raises(NetError, match="new_height and new_width must be set together"):
        image_data_net(tmp_path / "list.txt", f"{tmp_path}/", 1, "new_height: 4")
    (tmp_path / "bad.txt").write_text("missing.png 0\n")
    with pytest.raises(NetError, match="bad.txt:1: image file not found"):
        image_data_net(tmp_path / "bad.txt", f"{tmp_path}/", 1)


# -- HDF5 -------------------------------------------------------------------------------------
def write_h5(path, data, label):
    import h5py
    with h5py.File(path, "w") as f:
        f["data"] = data
        f["label"] = label


def hdf5_net(source, batch, extra="", transform=""):
    return Net(f'layer {{ name: "h" type: "HDF5Data" top: "data" top: "label" '
               f'hdf5_data_param {{ source: "{source}" batch_size: {batch} {extra} }} '
               f'{transform} }}', phase="TRAIN", device="cpu")


def test_hdf5_data_batches_run_across_files(tmp_path):
    a = np.arange(3 * 2 * 2, dtype=np.float64).reshape(3, 2, 2)
    b = -np.arange(2 * 2 * 2, dtype=np.float64).reshape(2, 2, 2) - 1
    write_h5(tmp_path / "a.h5", a, np.array([0, 1, 2]))
    write_h5(tmp_path / "b.h5", b, np.array([3, 4]))
    (tmp_path / "list.txt").write_text(f"{tmp_path}/a.h5\n{tmp_path}/b.h5\n")
    net = hdf5_net(tmp_path / "list.txt", 4)
    rows = np.concatenate([a, b])
    for k in range(3):
        net.forward()
        idx = [(4 * k + i) % 5 for i in range(4)]
        np.testing.assert_array_equal(net.blobs["data"].numpy(), rows[idx].astype(np.float32))
        assert net.blobs["label"].tolist() == idx
    shuffled = hdf5_net(tmp_path / "list.txt", 5, "shuffle: true")
    shuffled.forward()
    assert sorted(shuffled.blobs["label"].tolist()) == [0, 1, 2, 3, 4]


def test_hdf5_data_errors(tmp_path):
    write_h5(tmp_path / "a.h5", np.zeros((2, 3)), np.zeros(3))
    (tmp_path / "list.txt").write_text(f"{tmp_path}/a.h5\n")
    with pytest.raises(NetError, match="'label' has 3 rows, 'data' has 2"):
        hdf5_net(tmp_path / "list.txt", 1)
    with pytest.raises(NetError, match="HDF5Data does not transform data"):
        hdf5_net(tmp_path / "list.txt", 1, transform="transform_param { scale: 2 }")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(NetError, match="must list at least 1 HDF5 file"):
        hdf5_net(tmp_path / "empty.txt", 1)


def test_hdf5_output_writes_data_and_label(tmp_path):
    import h5py
    out = tmp_path / "out.h5"
    net = Net(f'''layer {{ name: "in" type: "Input" top: "x" top: "y"
                 input_param {{ shape {{ dim: 2 dim: 3 }} shape {{ dim: 2 }} }} }}
                 layer {{ name: "o" type: "HDF5Output" bottom: "x" bottom: "y"
                 hdf5_output_param {{ file_name: "{out}" }} }}''', device="cpu")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    net.forward(x=x, y=np.array([1, 0], np.float32))
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["data"][()], x)
        np.testing.assert_array_equal(f["label"][()], [1, 0])


# -- tools ------------------------------------------------------------------------------------
def test_convert_imageset_then_data_layer_and_mean(tmp_path):
    names, images = write_images(tmp_path, [(4, 5)] * 3)
    (tmp_path / "list.txt").write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    db = tmp_path / "db"
    assert convert_imageset.main(["--check_size", "--noshuffle", f"{tmp_path}/",
                                  str(tmp_path / "list.txt"), str(db)]) == 0
    reader = Reader(str(db), "LMDB")
    keys = [reader.next()[0] for _ in range(len(reader))]
    reader.close()
    assert keys == [f"{i:08d}_{n}".encode() for i, n in enumerate(names)]
    net = data_net(db, 3)
    net.forward()
    for i in range(3):
        np.testing.assert_array_equal(net.blobs["data"][i].numpy(), images[i])
    net.layers[0].close()
    mean_file = tmp_path / "mean.binaryproto"
    assert compute_image_mean.main([str(db), str(mean_file)]) == 0
    want = np.mean(np.stack(images).astype(np.float64), axis=0).astype(np.float32)
    got = read_binaryproto(str(mean_file))
    assert got.shape == (1, 3, 4, 5)
    np.testing.assert_allclose(got[0], want, rtol=1e-6)


def test_convert_imageset_encoded_keeps_the_file(tmp_path):
    names, images = write_images(tmp_path, [(4, 5), (6, 3)])
    (tmp_path / "list.txt").write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    db = tmp_path / "db"
    assert convert_imageset.main([f"{tmp_path}/", str(tmp_path / "list.txt"), str(db),
                                  "-encoded=true", "--backend=lmdb"]) == 0
    reader = Reader(str(db), "LMDB")
    for name, img in zip(names, images):
        datum = decode_datum(reader.next()[1])
        assert datum["data"] == (tmp_path / name).read_bytes()
        np.testing.assert_array_equal(datum_array(datum), img)
    reader.close()
    assert convert_imageset.main([f"{tmp_path}/", str(tmp_path / "list.txt"), str(db)]) == 1
