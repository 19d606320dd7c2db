"""Input, DummyData, MemoryData and ImageSegData: shapes, exact values, Caffe's transform rules
(pad bottom/right with mean and ignore_label, BGR mean, crop, mirror, data_dim), errors."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from deeplab_caffe.data.image_seg_data import ImageSegDataset, SegTransform, batch_stream, \
    CaffeOrder, c_atoi
from deeplab_caffe.errors import NetError
from deeplab_caffe.layers.base import get_layer_class
from deeplab_caffe.proto.message import Message
from deeplab_caffe.proto.spec import LayerSpec


def make_layer(type_name, top, phase="TEST", **params):
    msg = Message("LayerParameter", params)
    spec = LayerSpec(name=f"{type_name.lower()}_1", type=type_name, top=list(top), message=msg)
    return get_layer_class(type_name)(spec, phase)


def shape_msg(*dims):
    return Message("BlobShape", {"dim": list(dims)})


def filler(**f):
    return Message("FillerParameter", f)


# ---------------------------------------------------------------------------------------- Input
def test_input_one_shape_per_top_and_shared():
    layer = make_layer("Input", ["data", "aux"],
                       input_param=Message("InputParameter",
                                           {"shape": [shape_msg(2, 3, 5, 7), shape_msg(2, 4)]}))
    assert layer.setup([]) == [(2, 3, 5, 7), (2, 4)]
    data, aux = layer()
    assert data.shape == (2, 3, 5, 7) and torch.equal(aux, torch.zeros(2, 4))
    shared = make_layer("Input", ["a", "b", "c"],
                        input_param=Message("InputParameter", {"shape": [shape_msg(1, 2)]}))
    assert shared.setup([]) == [(1, 2)] * 3


def test_input_stores_given_arrays():
    layer = make_layer("Input", ["data"],
                       input_param=Message("InputParameter", {"shape": [shape_msg(1, 3, 2, 2)]}))
    layer.setup([])
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 2, 2)
    (out,) = layer(x)
    assert out.dtype == torch.float32 and torch.equal(out, torch.from_numpy(x).float())
    (again,) = layer()
    assert torch.equal(again, out)
    with pytest.raises(NetError, match="takes 1 arrays"):
        layer(x, x)


def test_input_bad_shape_count():
    layer = make_layer("Input", ["a", "b", "c"], input_param=Message(
        "InputParameter", {"shape": [shape_msg(1), shape_msg(2)]}))
    with pytest.raises(NetError, match="2 shapes for 3 tops"):
        layer.setup([])


def test_data_layer_device_follows_to():
    layer = make_layer("Input", ["data"],
                       input_param=Message("InputParameter", {"shape": [shape_msg(1, 1)]}))
    layer.setup([])
    assert layer.device == torch.device("cpu")
    layer.to(torch.device("meta"))
    assert layer.device == torch.device("meta") and layer()[0].device.type == "meta"
    assert "_device_anchor" not in layer.state_dict()


# ------------------------------------------------------------------------------------ DummyData
def test_dummy_default_constant_zero_and_legacy_dims():
    layer = make_layer("DummyData", ["a", "b"], dummy_data_param=Message(
        "DummyDataParameter", {"num": [2], "channels": [3, 1], "height": [4], "width": [5, 6]}))
    assert layer.setup([]) == [(2, 3, 4, 5), (2, 1, 4, 6)]
    a, b = layer()
    assert torch.equal(a, torch.zeros(2, 3, 4, 5)) and torch.equal(b, torch.zeros(2, 1, 4, 6))


def test_dummy_constant_filled_once_random_refilled():
    layer = make_layer("DummyData", ["c", "g"], dummy_data_param=Message(
        "DummyDataParameter", {"shape": [shape_msg(3, 4), shape_msg(50, 40)],
                               "data_filler": [filler(type="constant", value=2.5),
                                               filler(type="gaussian", std=2.0)]}))
    layer.setup([])
    layer.generator = torch.Generator().manual_seed(0)
    c1, g1 = layer()
    c1.add_(100)            # an in-place consumer must not change the next batch
    c2, g2 = layer()
    assert torch.equal(c2, torch.full((3, 4), 2.5))
    assert not torch.equal(g1, g2)
    assert abs(g2.std().item() - 2.0) < 5 * 2.0 / np.sqrt(2 * 2000)


def test_dummy_errors():
    both = make_layer("DummyData", ["a"], dummy_data_param=Message(
        "DummyDataParameter", {"shape": [shape_msg(1)], "num": [1], "channels": [1],
                               "height": [1], "width": [1]}))
    with pytest.raises(NetError, match="both shape and legacy"):
        both.setup([])
    bad = make_layer("DummyData", ["a"], dummy_data_param=Message(
        "DummyDataParameter", {"shape": [shape_msg(2)], "data_filler": [filler(type="nope")]}))
    with pytest.raises(NetError, match="'nope'"):
        bad.setup([])


# ----------------------------------------------------------------------------------- MemoryData
def memory_layer(batch=2, **extra):
    return make_layer("MemoryData", ["data", "label"], memory_data_param=Message(
        "MemoryDataParameter", {"batch_size": batch, "channels": 2, "height": 3, "width": 4}),
        **extra)


def test_memory_data_cycles_batches():
    layer = memory_layer()
    assert layer.setup([]) == [(2, 2, 3, 4), (2,)]
    data = np.random.default_rng(0).normal(size=(6, 2, 3, 4)).astype(np.float32)
    labels = np.arange(6, dtype=np.float32)
    layer.set_input_arrays(data, labels[:, None, None, None])
    for expect in (0, 2, 4, 0, 2):
        d, lab = layer()
        assert torch.equal(d, torch.from_numpy(data[expect:expect + 2]))
        assert torch.equal(lab, torch.from_numpy(labels[expect:expect + 2]))


def test_memory_data_errors():
    layer = memory_layer()
    layer.setup([])
    with pytest.raises(NetError, match="set_input_arrays first"):
        layer()
    with pytest.raises(NetError, match="multiple of batch_size"):
        layer.set_input_arrays(np.zeros((3, 2, 3, 4)), np.zeros(3))
    with pytest.raises(NetError, match="layer expects"):
        layer.set_input_arrays(np.zeros((2, 3, 3, 4)), np.zeros(2))
    with pytest.raises(NetError, match="positive"):
        make_layer("MemoryData", ["d", "l"], memory_data_param=Message(
            "MemoryDataParameter", {"batch_size": 1})).setup([])


def test_memory_data_add_mat_vector_applies_mean_and_scale():
    layer = memory_layer(transform_param=Message("TransformationParameter",
                                                 {"mean_value": [1.0, 2.0], "scale": 0.5}))
    layer.setup([])
    imgs = [np.full((3, 4, 2), v, np.uint8) for v in (10, 20)]
    layer.add_mat_vector(imgs, [0, 1])
    d, lab = layer()
    expect = np.stack([np.stack([np.full((3, 4), (v - 1) * 0.5), np.full((3, 4), (v - 2) * 0.5)])
                       for v in (10, 20)]).astype(np.float32)
    assert torch.equal(d, torch.from_numpy(expect)) and lab.tolist() == [0.0, 1.0]


# --------------------------------------------------------------------------------- ImageSegData
def write_rgb(path, rgb):
    Image.fromarray(np.asarray(rgb, np.uint8), "RGB").save(path)


def write_label(path, lab):
    Image.fromarray(np.asarray(lab, np.uint8)).save(path)


def seg_layer(tmp_path, lines, phase="TEST", tops=("data", "label", "data_dim"), transform=None,
              seed=0, **image_params):
    src = tmp_path / "list.txt"
    src.write_text("".join(line + "\n" for line in lines))
    p = {"source": str(src), "root_folder": str(tmp_path), "batch_size": 1,
         "label_type": "PIXEL"}
    p.update(image_params)
    layer = make_layer("ImageSegData", tops, phase=phase,
                       image_data_param=Message("ImageDataParameter", p),
                       transform_param=Message("TransformationParameter", transform or {}))
    layer.seed = seed
    return layer


def coded_image(h, w):
    """RGB image whose pixels encode their position: R = y, G = x, B = 7; label = 10*y + x."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([yy, xx, np.full_like(yy, 7)], -1)
    return rgb, (10 * yy + xx) % 250


def test_pad_bottom_right_mean_bgr_and_data_dim(tmp_path):
    rgb, lab = coded_image(3, 5)
    write_rgb(tmp_path / "a.png", rgb)
    write_label(tmp_path / "a_l.png", lab)
    mean = [104.0, 116.5, 122.25]        # B, G, R
    layer = seg_layer(tmp_path, ["/a.png /a_l.png"], transform={
        "crop_size": 6, "mean_value": mean, "scale": 0.5})
    assert layer.setup([]) == [(1, 3, 6, 6), (1, 1, 6, 6), (1, 1, 1, 2)]
    data, label, dim = layer()
    bgr = rgb[:, :, ::-1].astype(np.float32)
    expect = np.zeros((3, 6, 6), np.float32)        # padding: mean - mean = 0
    for c in range(3):
        expect[c, :3, :5] = (bgr[:, :, c] - np.float32(mean[c])) * np.float32(0.5)
    expect_label = np.full((1, 6, 6), 255, np.float32)
    expect_label[0, :3, :5] = lab
    assert torch.equal(data[0], torch.from_numpy(expect))
    assert torch.equal(label[0], torch.from_numpy(expect_label))
    assert dim.tolist() == [[[[3.0, 5.0]]]]


def test_single_mean_value_and_custom_ignore_label(tmp_path):
    rgb, lab = coded_image(2, 2)
    write_rgb(tmp_path / "a.png", rgb)
    write_label(tmp_path / "a_l.png", lab)
    layer = seg_layer(tmp_path, ["/a.png /a_l.png"], transform={"crop_size": 3,
                                                               "mean_value": [5.0]},
                      ignore_label=77)
    layer.setup([])
    data, label, _ = layer()
    assert torch.equal(data[0, :, :2, :2], torch.from_numpy(
        rgb[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) - 5))
    assert (data[0, :, 2, :] == 0).all() and (label[0, 0, 2, :] == 77).all()


def test_test_phase_centre_crop(tmp_path):
    rgb, lab = coded_image(10, 8)
    write_rgb(tmp_path / "a.png", rgb)
    write_label(tmp_path / "a_l.png", lab)
    layer = seg_layer(tmp_path, ["/a.png /a_l.png"], transform={"crop_size": 4})
    layer.setup([])
    data, label, dim = layer()
    h_off, w_off = (10 - 4) // 2, (8 - 4) // 2
    assert torch.equal(data[0, 2], torch.from_numpy(rgb[h_off:h_off + 4, w_off:w_off + 4, 0]
                                                    .astype(np.float32)))   # R is channel 2
    assert torch.equal(label[0, 0], torch.from_numpy(lab[h_off:h_off + 4, w_off:w_off + 4]
                                                     .astype(np.float32)))
    assert dim.tolist() == [[[[4.0, 4.0]]]]


def decode_positions(data, label):
    """(y, x) source positions from a coded image's data top, checked against the label."""
    ys, xs = data[2].numpy().astype(int), data[1].numpy().astype(int)
    assert np.array_equal(label[0].numpy().astype(int), (10 * ys + xs) % 250)
    return ys, xs


def test_train_random_crop_and_mirror_move_image_and_label_together(tmp_path):
    rgb, lab = coded_image(12, 11)
    write_rgb(tmp_path / "a.png", rgb)
    write_label(tmp_path / "a_l.png", lab)
    layer = seg_layer(tmp_path, ["/a.png /a_l.png"], phase="TRAIN", batch_size=1,
                      transform={"crop_size": 5, "mirror": True})
    layer.setup([])
    offsets, mirrored = set(), set()
    for _ in range(40):
        data, label, _ = layer()
        ys, xs = decode_positions(data[0], label[0])
        y0, x_first = ys[0, 0], xs[0, 0]
        assert np.array_equal(ys, y0 + np.arange(5)[:, None].repeat(5, 1))
        flipped = xs[0, 0] > xs[0, -1]
        x0 = xs.min()
        step = -1 if flipped else 1
        assert np.array_equal(xs, x_first + step * np.arange(5)[None, :].repeat(5, 0))
        assert 0 <= y0 <= 12 - 5 and 0 <= x0 <= 11 - 5
        offsets.add((int(y0), int(x0)))
        mirrored.add(bool(flipped))
    assert mirrored == {True, False} and len(offsets) > 5


def test_mirror_also_in_test_phase_like_caffe(tmp_path):
    # DeepLab's transformer flips whenever mirror is set, whatever the phase.
    rgb, lab = coded_image(4, 6)
    write_rgb(tmp_path / "a.png", rgb)
    write_label(tmp_path / "a_l.png", lab)
    layer = seg_layer(tmp_path, ["/a.png /a_l.png"], transform={"mirror": True})
    layer.setup([])
    seen = set()
    for _ in range(20):
        data, label, dim = layer()
        ys, xs = decode_positions(data[0], label[0])
        seen.add(bool(xs[0, 0] == 5))
        assert dim.tolist() == [[[[4.0, 6.0]]]]
    assert seen == {True, False}


def test_label_type_image_and_none(tmp_path):
    rgb, _ = coded_image(3, 3)
    write_rgb(tmp_path / "a.png", rgb)
    img_layer = seg_layer(tmp_path, ["/a.png 7", "/a.png /SegmentationClassAug/x.png"],
                          label_type="IMAGE", batch_size=2, transform={"crop_size": 4})
    img_layer.setup([])
    _, label, _ = img_layer()
    assert (label[0, 0, :3, :3] == 7).all() and (label[1, 0, :3, :3] == 0).all()   # atoi
    assert (label[:, 0, 3, :] == 255).all()
    none_layer = seg_layer(tmp_path, ["/a.png"], label_type="NONE", ignore_label=200)
    none_layer.setup([])
    _, label, _ = none_layer()
    assert (label == 200).all()
    assert c_atoi("  -12abc") == -12 and c_atoi("/x.png") == 0


def test_palette_label_read_by_index(tmp_path):
    rgb, lab = coded_image(3, 4)
    write_rgb(tmp_path / "a.png", rgb)
    pal = Image.frombytes("P", (4, 3), np.asarray(lab, np.uint8).tobytes())
    pal.putpalette([255 - (i % 256) for i in range(768)])
    pal.save(tmp_path / "a_l.png")
    layer = seg_layer(tmp_path, ["/a.png /a_l.png"])
    layer.setup([])
    _, label, _ = layer()
    assert torch.equal(label[0, 0], torch.from_numpy(lab.astype(np.float32)))


def test_rgb_label_is_an_error_naming_the_file(tmp_path):
    rgb, _ = coded_image(3, 4)
    write_rgb(tmp_path / "a.png", rgb)
    write_rgb(tmp_path / "a_l.png", rgb)
    layer = seg_layer(tmp_path, ["/a.png /a_l.png"])
    layer.setup([])
    with pytest.raises(NetError, match=r"a_l\.png.*RGB.*luminance"):
        layer()


def test_missing_file_names_file_and_list_line(tmp_path):
    rgb, lab = coded_image(3, 4)
    write_rgb(tmp_path / "a.png", rgb)
    write_label(tmp_path / "a_l.png", lab)
    layer = seg_layer(tmp_path, ["/a.png /a_l.png", "", "/b.png /a_l.png"], batch_size=2)
    layer.setup([])
    with pytest.raises(NetError, match=r"list\.txt:3: image file not found: .*/b\.png"):
        layer()
    with pytest.raises(NetError, match=r"cannot read list file"):
        make_layer("ImageSegData", ["d"], image_data_param=Message(
            "ImageDataParameter", {"source": str(tmp_path / "nope.txt")})).setup([])


def test_sizes_must_agree_without_crop(tmp_path):
    for name, (h, w) in (("a", (3, 4)), ("b", (4, 4))):
        rgb, lab = coded_image(h, w)
        write_rgb(tmp_path / f"{name}.png", rgb)
        write_label(tmp_path / f"{name}_l.png", lab)
    layer = seg_layer(tmp_path, ["/a.png /a_l.png", "/b.png /b_l.png"], batch_size=2)
    assert layer.setup([])[0] == (2, 3, 3, 4)
    with pytest.raises(NetError, match=r"b\.png.*same size"):
        layer()


def test_top_count_and_shuffle_epochs(tmp_path):
    n = 7
    lines = []
    for i in range(n):
        write_rgb(tmp_path / f"{i}.png", np.full((2, 2, 3), i, np.uint8))
        lines.append(f"/{i}.png {i}")
    layer = seg_layer(tmp_path, lines, tops=("data",), label_type="IMAGE", shuffle=True,
                      seed=3)
    # ExactNumTopBlobs 3 with AutoTopBlobs: one listed top, two anonymous ones.
    assert layer.setup([]) == [(1, 3, 2, 2), (1, 1, 2, 2), (1, 1, 1, 2)]
    seq = [int(layer()[0][0, 0, 0, 0]) for _ in range(3 * n)]
    epochs = [seq[k * n:(k + 1) * n] for k in range(3)]
    assert all(sorted(e) == list(range(n)) for e in epochs)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]     # reshuffled at each wrap
    again = seg_layer(tmp_path, lines, tops=("data",), label_type="IMAGE", shuffle=True, seed=3)
    again.setup([])
    assert [int(again()[0][0, 0, 0, 0]) for _ in range(3 * n)] == seq


def test_dataset_pickles_and_workers_match_in_process(tmp_path):
    lines = []
    for i in range(4):
        rgb, lab = coded_image(6 + i, 7)
        write_rgb(tmp_path / f"{i}.png", rgb)
        write_label(tmp_path / f"{i}_l.png", lab)
        lines.append(f"/{i}.png /{i}_l.png")
    (tmp_path / "list.txt").write_text("\n".join(lines))
    ds = ImageSegDataset(str(tmp_path / "list.txt"), str(tmp_path), "PIXEL",
                         SegTransform(crop_size=5, mirror=True, phase="TRAIN"))
    ds2 = pickle.loads(pickle.dumps(ds))
    a = batch_stream(ds, CaffeOrder(len(ds), 2, shuffle=True, seed=5))
    b = batch_stream(ds2, CaffeOrder(len(ds2), 2, shuffle=True, seed=5), num_workers=1)
    for _ in range(3):
        for x, y in zip(next(a), next(b)):
            assert torch.equal(x, y)


def test_train_crop_of_image_smaller_than_crop_in_one_dimension(tmp_path):
    # 3 x 10 image, crop 5: padded to 5 x 10; rows 3-4 are padding, the window slides in x.
    rgb, lab = coded_image(3, 10)
    write_rgb(tmp_path / "a.png", rgb)
    write_label(tmp_path / "a_l.png", lab)
    layer = seg_layer(tmp_path, ["/a.png /a_l.png"], phase="TRAIN",
                      transform={"crop_size": 5, "mean_value": [7.0, 0.0, 0.0]})
    layer.setup([])
    starts = set()
    for _ in range(30):
        data, label, dim = layer()
        assert (data[0, :, 3:] == 0).all() and (label[0, 0, 3:] == 255).all()
        ys, xs = data[0, 2, :3].numpy(), data[0, 1, :3].numpy()
        assert np.array_equal(ys, np.arange(3)[:, None].repeat(5, 1))
        x0 = int(xs[0, 0])
        assert np.array_equal(xs, x0 + np.arange(5)[None].repeat(3, 0))
        assert np.array_equal(label[0, 0, :3].numpy(), lab[:, x0:x0 + 5])
        starts.add(x0)
        assert dim.tolist() == [[[[3.0, 5.0]]]]
    assert starts == set(range(6))
