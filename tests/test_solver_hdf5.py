"""snapshot_format: HDF5 and HDF5 weights: Caffe's layout checked with h5py directly, files laid
out as Caffe writes them loading into our nets and solvers, snapshot_diff, and the layer names
Caffe cannot snapshot (the resume of every solver type is in test_solver_adaptive.py)."""
import os

import numpy as np
import pytest
import torch

import deeplab_caffe as dc
from solver_util import make_solver

h5py = pytest.importorskip("h5py")

SHARED_NET = """
name: "Shared"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "a" type: "InnerProduct" bottom: "data" top: "a"
  param { name: "w" } param { name: "ab" }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 }
                        bias_filler { type: "gaussian" std: 1 } } }
layer { name: "b" type: "InnerProduct" bottom: "a" top: "b"
  param { name: "w" } param { name: "bb" }
  inner_product_param { num_output: 3 bias_filler { type: "gaussian" std: 1 } } }
"""


def _net(tmp_path, seed):
    torch.manual_seed(seed)
    return dc.Net(SHARED_NET, phase="TEST")


def _layout(path):
    """{dataset path: (dtype, shape)} and the list of group paths of an HDF5 file."""
    datasets, groups = {}, []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            datasets[name] = (obj.dtype.str, obj.shape)
        else:
            groups.append(name)
    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return datasets, groups


@pytest.mark.parametrize("name,kw", [("w.caffemodel.h5", {}), ("w.bin", {"format": "hdf5"})])
def test_weights_layout_and_round_trip(tmp_path, name, kw):
    # Net::ToHDF5: a group per layer (Input's too), float32 datasets "0", "1" with the blobs'
    # shapes; the weight that "b" shares from "a" is written under its owner only.
    net = _net(tmp_path, 0)
    net.save(tmp_path / name, **kw)
    datasets, groups = _layout(tmp_path / name)
    assert sorted(groups) == ["data", "data/a", "data/b", "data/data"]
    assert datasets == {"data/a/0": ("<f4", (3, 3)), "data/a/1": ("<f4", (3,)),
                        "data/b/1": ("<f4", (3,))}
    with h5py.File(tmp_path / name, "r") as f:
        np.testing.assert_array_equal(f["data/a/0"][()], net.params["a"][0].detach().numpy())
        np.testing.assert_array_equal(f["data/b/1"][()], net.params["b"][1].detach().numpy())
    other = _net(tmp_path, 1)
    assert not torch.equal(other.params["a"][0], net.params["a"][0])
    assert other.copy_from(tmp_path / name) == ["a", "b"]
    for x, y in zip(net.parameters(), other.parameters()):
        assert torch.equal(x, y)
    assert other.params["b"][0] is other.params["a"][0]


def _caffe_weights(path, blobs, extra=None):
    """A .caffemodel.h5 as Caffe's ToHDF5 (with snapshot_diff) lays it out, written with h5py."""
    with h5py.File(path, "w") as f:
        for layer, arrays in blobs.items():
            g = f.create_group(f"data/{layer}")
            f.create_group(f"diff/{layer}")
            for i, a in arrays.items():
                g.create_dataset(str(i), data=a)
                f[f"diff/{layer}"].create_dataset(str(i), data=np.full_like(a, 7))
        for k, v in (extra or {}).items():
            f.create_dataset(k, data=v)


def test_caffe_written_weights_load(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3)).astype(np.float32)
    ab = rng.standard_normal(3)                      # float64 on disk: Caffe converts
    bb = np.arange(3, dtype=np.int32)                # integer class: accepted too
    _caffe_weights(tmp_path / "c.caffemodel.h5", {"a": {0: w, 1: ab}, "b": {1: bb},
                                                  "data": {}, "gone": {0: w}})
    net = _net(tmp_path, 3)
    assert sorted(net.copy_from(tmp_path / "c.caffemodel.h5")) == ["a", "b"]
    np.testing.assert_array_equal(net.params["a"][0].detach().numpy(), w)
    np.testing.assert_array_equal(net.params["b"][0].detach().numpy(), w)
    np.testing.assert_allclose(net.params["a"][1].detach().numpy(), ab, rtol=1e-7)
    np.testing.assert_array_equal(net.params["b"][1].detach().numpy(), bb)


@pytest.mark.parametrize("blobs,match", [
    ({"a": {0: np.zeros((3, 4), np.float32), 1: np.zeros(3, np.float32)}},
     r"layer 'a'.*blob 0 has shape \(3, 4\)"),
    ({"a": {0: np.zeros((3, 3), np.float32)}}, r"layer 'a'.*no blob 1"),
    ({"b": {0: np.zeros((3, 3)), 1: np.zeros(3), 2: np.zeros(1)}}, r"layer 'b'.*3 blob\(s\)"),
])
def test_caffe_weights_mismatch_errors(tmp_path, blobs, match):
    _caffe_weights(tmp_path / "bad.h5", blobs)
    with pytest.raises(dc.NetError, match=match):
        _net(tmp_path, 0).copy_from(tmp_path / "bad.h5")


def _caffe_string(f, name, text):
    # H5LTmake_dataset_string, by h5py's low-level calls: scalar, strlen + 1, NUL-terminated.
    raw = text.encode() + b"\0"
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(raw))
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    ds = h5py.h5d.create(f.id, name.encode(), tid, h5py.h5s.create(h5py.h5s.SCALAR))
    ds.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw, dtype=f"S{len(raw)}"), mtype=tid)


ADAM = 'type: "Adam"\nlr_policy: "step"\ngamma: 0.5\nstepsize: 2\nbase_lr: 0.01\n' \
       'momentum: 0.9\nmomentum2: 0.99\nmax_iter: 20\n'


def test_caffe_written_solverstate_restores(tmp_path):
    s = make_solver(tmp_path, ADAM)
    w = np.array([[0.5, -1.0, 2.0]], np.float32)
    _caffe_weights(tmp_path / "c_iter_4.caffemodel.h5", {"ip": {0: w, 1: np.ones(1, np.float32)}})
    history = [np.full((1, 3), 0.1, np.float32), np.full(1, 0.2, np.float32),
               np.full((1, 3), 0.3, np.float32), np.full(1, 0.4, np.float32)]
    with h5py.File(tmp_path / "c_iter_4.solverstate.h5", "w") as f:
        f.create_dataset("iter", data=np.array([4], np.int32))
        _caffe_string(f, "learned_net", str(tmp_path / "c_iter_4.caffemodel.h5"))
        f.create_dataset("current_step", data=np.array([2], np.int32))
        for i, h in enumerate(history):
            f.create_dataset(f"history/{i}", data=h)
    s.restore(str(tmp_path / "c_iter_4.solverstate.h5"))
    assert (s.iter, s.current_step) == (4, 2)
    np.testing.assert_array_equal(s.net.params["ip"][0].detach().numpy(), w)
    for got, want in zip(s.history, history):
        np.testing.assert_array_equal(got.numpy(), want)
    # Caffe's HDF5 restore needs the exact shapes: a legacy-looking (1, 1, 1, 3) is refused.
    with h5py.File(tmp_path / "bad.solverstate.h5", "w") as f:
        f.create_dataset("iter", data=np.array([4], np.int32))
        f.create_dataset("current_step", data=np.array([0], np.int32))
        for i, h in enumerate(history):
            f.create_dataset(f"history/{i}", data=h.reshape((1, 1) * (i == 0) + h.shape))
    with pytest.raises(dc.CaffeError, match=r"history blob 0 \(ip param 0\) has shape"):
        s.restore(str(tmp_path / "bad.solverstate.h5"))


def test_our_solverstate_layout(tmp_path):
    # What Caffe's RestoreSolverStateFromHDF5 reads: int iter / current_step, a NUL-terminated
    # scalar learned_net, history/0 .. 2n-1 (Adam: the n first moments, then the n second).
    s = make_solver(tmp_path, ADAM + 'snapshot_format: HDF5\nsnapshot: 3\n')
    s.step(3)
    path = tmp_path / "ls_iter_3.solverstate.h5"
    datasets, _ = _layout(path)
    assert datasets == {"iter": ("<i4", (1,)), "current_step": ("<i4", (1,)),
                        "learned_net": ("|S" + str(len(str(tmp_path / "ls_iter_3.caffemodel.h5"))
                                                   + 1), ()),
                        "history/0": ("<f4", (1, 3)), "history/1": ("<f4", (1,)),
                        "history/2": ("<f4", (1, 3)), "history/3": ("<f4", (1,))}
    with h5py.File(path, "r") as f:
        assert f["learned_net"].id.get_type().get_strpad() == h5py.h5t.STR_NULLTERM
        assert f["learned_net"][()] == str(tmp_path / "ls_iter_3.caffemodel.h5").encode()
        assert (int(f["iter"][0]), int(f["current_step"][0])) == (3, 1)
        for i, h in enumerate(s.history):
            np.testing.assert_array_equal(f[f"history/{i}"][()], h.numpy())
    assert (tmp_path / "ls_iter_3.caffemodel.h5").exists()
    assert not (tmp_path / "ls_iter_3.caffemodel").exists()


FIX = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "caffe")


@pytest.mark.skipif(not os.path.isdir(FIX), reason="no ../shared/fixtures/caffe")
def test_real_caffemodel_to_hdf5_and_back(tmp_path, capsys):
    # BVLC's LeNet (a real V2 .caffemodel) through the porting tool into Caffe's HDF5 layout,
    # then into a LeNet net by copy_from: the same numbers everywhere.
    from deeplab_caffe.cli import port_caffemodel
    src = os.path.join(FIX, "v2", "lenet_iter_10000.caffemodel")
    out = tmp_path / "lenet.caffemodel.h5"
    assert port_caffemodel.main([src, str(out), "--quiet"]) == 0
    model = dc.io.read_caffemodel(src)
    datasets, _ = _layout(out)
    assert datasets == {f"data/{l.name}/{i}": ("<f4", b.shape)
                        for l in model.layers for i, b in enumerate(l.blobs)}
    net = dc.Net(os.path.join(FIX, "v2", "lenet.prototxt"), phase="TEST")
    net.copy_from(out)
    assert sorted(net.params) == sorted(l.name for l in model.layers if l.blobs)
    for layer in [l for l in model.layers if l.blobs]:
        for p, b in zip(net.params[layer.name], layer.blobs, strict=True):
            assert np.array_equal(p.detach().numpy(), b)
    back = tmp_path / "back.pt"
    assert port_caffemodel.main([str(out), str(back), "--quiet"]) == 0


def test_holes_refused_by_binary_writers(tmp_path):
    _net(tmp_path, 0).save(tmp_path / "s.caffemodel.h5")
    with pytest.raises(dc.CaffeError, match=r"layer 'b' has no blob 0 .*shared"):
        dc.io.write_caffemodel(tmp_path / "s.caffemodel", dc.io.read_weights(
            tmp_path / "s.caffemodel.h5"))


@pytest.mark.parametrize("snapshot_format", ["BINARYPROTO", "HDF5"])
def test_snapshot_diff(tmp_path, snapshot_format):
    # snapshot_diff: Caffe's diffs after ApplyUpdate are the update values, for SGD the new
    # velocity (the history blob); written as BlobProto.diff, or under the HDF5 file's "diff".
    s = make_solver(tmp_path, 'lr_policy: "fixed"\nbase_lr: 0.05\nmomentum: 0.9\nmax_iter: 9\n'
                    f'snapshot: 2\nsnapshot_diff: true\nsnapshot_format: {snapshot_format}\n')
    s.step(2)
    velocity = [h.numpy() for h in s.history]
    assert np.abs(velocity[0]).min() > 0
    if snapshot_format == "HDF5":
        datasets, groups = _layout(tmp_path / "ls_iter_2.caffemodel.h5")
        assert sorted(g for g in groups if g.startswith("diff")) == \
            ["diff", "diff/data", "diff/ip", "diff/loss"]
        with h5py.File(tmp_path / "ls_iter_2.caffemodel.h5", "r") as f:
            for i, v in enumerate(velocity):
                np.testing.assert_array_equal(f[f"diff/ip/{i}"][()], v)
        return
    from deeplab_caffe.proto import wire
    from deeplab_caffe.proto.schema import get_schema
    raw = (tmp_path / "ls_iter_2.caffemodel").read_bytes()
    net = wire.Decoder(get_schema("bvlc")).decode(raw, "NetParameter")
    ip = [lp for lp in net.getlist("layer") if lp.get("name") == "ip"][0]
    for bp, v in zip(ip.getlist("blobs"), velocity, strict=True):
        np.testing.assert_array_equal(np.asarray(bp.get("diff"), np.float32), v.reshape(-1))
    s.net.copy_from(tmp_path / "ls_iter_2.caffemodel")      # the diffs do not disturb reading


@pytest.mark.parametrize("name,match", [("conv1/7x7_s2", r"layer 'conv1/7x7_s2' cannot be"),
                                        ("data", r"two layers are named 'data'")])
def test_layer_names_caffe_cannot_snapshot(tmp_path, name, match):
    # Caffe's ToHDF5 crashes at the first snapshot on these (BVLC issues 4267 and 2885); we
    # refuse them when the solver is built, and when a net is saved.
    net_text = SHARED_NET.replace('name: "b"', f'name: "{name}"')
    (tmp_path / "n.prototxt").write_text(net_text.replace(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }',
        'layer { name: "data" type: "DummyData" top: "data" top: "y" dummy_data_param { '
        'shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }') + """
layer { name: "loss" type: "EuclideanLoss" bottom: "b" bottom: "y" top: "loss" }""")
    solver = (f'net: "{tmp_path}/n.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
              f'snapshot_prefix: "{tmp_path}/s"\nsolver_mode: CPU\n')
    dc.SGDSolver(solver, log=dc.log.GLog(enabled=False))          # BINARYPROTO: fine
    with pytest.raises(dc.CaffeError, match=match):
        dc.SGDSolver(solver + "snapshot_format: HDF5\n", log=dc.log.GLog(enabled=False))
    net = dc.Net(str(tmp_path / "n.prototxt"), phase="TRAIN")
    with pytest.raises(dc.CaffeError, match=match):
        net.save(tmp_path / "w.caffemodel.h5")
    assert not list(tmp_path.glob("w.caffemodel.h5*"))
