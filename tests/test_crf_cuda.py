"""The CRF's CUDA kernels (lattice build, filter, mean-field) against their CPU twins, on every
backend that runs them (conftest's ``backend``: a real GPU, or the emulated-CUDA build on CPU
tensors).  The design gives the same bits as the CPU at every size: vertices numbered by first
occurrence, the splat summed in the CPU's order (two halves from 16384 points), the slice,
update and softmax rounded by the shared helpers."""
import contextlib
import os
import subprocess
import sys
from unittest import mock

import pytest
import torch

from deeplab_caffe import emu
from deeplab_caffe.crf import dense_crf
from deeplab_caffe.crf.dense_crf import kernel_norms
from deeplab_caffe.errors import CRFError
from deeplab_caffe.ops import crf as crf_ops
from deeplab_caffe.ops.crf import Kernel, build_lattice, lattice_filter, meanfield

from conftest import requires_emu
from test_crf_lattice import grid_features, smooth_image
from test_crf_meanfield import _cuda_modes_case, scene


@contextlib.contextmanager
def on(backend):
    """build_lattice, lattice_filter and meanfield (and their Python code: padding, errors) call
    the backend's ops inside the block; the CPU references are computed outside it."""
    with mock.patch.object(crf_ops, "_ops", backend.ops):
        yield


def to_dev(backend, lat):
    return type(lat)(*(backend.to(t) for t in lat))


def kernels_to(backend, kernels):
    return [Kernel(to_dev(backend, k.lattice), backend.to(k.norm_before),
                   backend.to(k.norm_after), backend.to(k.compat)) for k in kernels]


def assert_same_lattice(cpu, dev):
    for name, a, b in zip(cpu._fields, cpu, dev):
        assert torch.equal(a, b.cpu()), name


@pytest.mark.parametrize("d", [2, 5, 9])
def test_lattice_and_filter_match_cpu(backend, d):
    g = torch.Generator().manual_seed(7)
    feats = (torch.randn(3000, d, generator=g) * 3).float()
    ids = (torch.arange(3000) // 1000).int()
    vals = torch.rand(3000, 21, generator=g)
    cpu = build_lattice(feats, ids)
    ref = [lattice_filter(vals[:, :c].contiguous(), cpu, reverse=r)
           for c, r in ((21, False), (2, False), (1, True))]
    # pydensecrf's padding points: 2999 points in images of 1000, 1000 and 999
    cpu_pad = build_lattice(feats[:2999], ids[:2999], pad_to=4)
    with on(backend):
        dev = build_lattice(backend.to(feats), backend.to(ids))
        out = [lattice_filter(backend.to(vals[:, :c].contiguous()), dev, reverse=r)
               for c, r in ((21, False), (2, False), (1, True))]
        dev_pad = build_lattice(backend.to(feats[:2999]), backend.to(ids[:2999]), pad_to=4)
    assert_same_lattice(cpu, dev)
    for a, b in zip(ref, out):  # C = 21 and C = 2 take densecrf's two slice roundings
        assert torch.equal(a, b.cpu())
    assert_same_lattice(cpu_pad, dev_pad)


@pytest.mark.parametrize("h,w", [(128, 128), (127, 129)])
def test_splat_halves_match_cpu(backend, h, w):
    """P = 16384 is the first size the CPU splats as two halves; 16383 the last it does not."""
    img = smooth_image(h, w, 2)
    feats = grid_features(h, w, 9.0, img, 6.0)
    vals = torch.rand(h * w, 5, generator=torch.Generator().manual_seed(1))
    cpu = build_lattice(feats)
    ref = lattice_filter(vals, cpu)
    with on(backend):
        out = lattice_filter(backend.to(vals), to_dev(backend, cpu))
    assert torch.equal(out.cpu(), ref)


@pytest.mark.parametrize("h,w", [(500, 375), (513, 513)])
def test_crf_at_real_sizes_matches_cpu(backend, h, w):
    """DeepLab-LargeFOV's CRF (21 labels, pos 3/3, bi 4/121/5, 10 iterations) on a PASCAL-sized
    image and on the 513x513 crop: lattices, normalisers and Q, bit for bit."""
    img, scores = scene(1, h, w, 21, 5)
    unary = -torch.log_softmax(scores[0].reshape(21, -1).t(), 1).contiguous()
    hwc = img[0].permute(1, 2, 0)
    kernels, dev_kernels = [], []
    for feats, wgt in ((grid_features(h, w, 3.0), 3.0),
                       (grid_features(h, w, 121.0, hwc, 5.0), 4.0)):
        lat = build_lattice(feats)
        with on(backend):
            dev = build_lattice(backend.to(feats))
            dev_norms = kernel_norms(dev, "NORMALIZE_AFTER")
        assert_same_lattice(lat, dev)
        norms = kernel_norms(lat, "NORMALIZE_AFTER")
        assert torch.equal(dev_norms[1].cpu(), norms[1])
        compat = torch.full((21,), -wgt)
        kernels.append(Kernel(lat, *norms, compat))
        dev_kernels.append(Kernel(dev, *dev_norms, backend.to(compat)))
    ref = meanfield(unary, kernels, 10)
    with on(backend):
        q = meanfield(backend.to(unary), dev_kernels, 10)
    assert torch.equal(q.cpu(), ref)


@pytest.mark.parametrize("L,compat_kind", [(21, "potts"), (5, "diagonal"), (2, "potts"),
                                           (7, "matrix"), (3000, "potts")])
def test_meanfield_modes_match_cpu(backend, monkeypatch, L, compat_kind):
    """The fused update with and without a CUDA graph and the one-kernel-per-step path compute
    the CPU's operations in the CPU's order: the CPU's Q in every mode.  L = 2 takes densecrf's
    scalar rounding, L = 3000 a four-point tile, a matrix the unfused path."""
    unary, kernels = _cuda_modes_case(L, compat_kind, 11)
    cpu = meanfield(unary, kernels, 6)
    gk, gu = kernels_to(backend, kernels), backend.to(unary)
    for mode in ("graph", "fused", "plain"):
        monkeypatch.setenv("DEEPLAB_CAFFE_CRF_CUDA", mode)
        with on(backend):
            assert torch.equal(meanfield(gu, gk, 6).cpu(), cpu), mode
    if L > 21:  # the resumes exercise the glue, not the tiles: one size is enough
        return
    # One iteration at a time (no graph), resumed through q_init, gives the same.
    monkeypatch.setenv("DEEPLAB_CAFFE_CRF_CUDA", "graph")
    q = None
    with on(backend):
        for _ in range(6):
            q = meanfield(gu, gk, 1, q_init=q)
        q3 = meanfield(gu, gk, 3, q_init=meanfield(gu, gk, 3))
    assert torch.equal(q.cpu(), cpu)
    assert torch.equal(q3.cpu(), cpu)


@pytest.mark.parametrize("norm", ["NORMALIZE_BEFORE", "NORMALIZE_SYMMETRIC", "NO_NORMALIZATION"])
def test_meanfield_normalizations_match_cpu(backend, norm):
    unary, kernels = _cuda_modes_case(21, "potts", 3)
    kernels = [Kernel(k.lattice, *kernel_norms(k.lattice, norm), k.compat) for k in kernels]
    with on(backend):
        q = meanfield(backend.to(unary), kernels_to(backend, kernels), 4)
    assert torch.equal(q.cpu(), meanfield(unary, kernels, 4))


@pytest.mark.parametrize("normalization", ["NORMALIZE_AFTER", "NORMALIZE_SYMMETRIC",
                                           "NORMALIZE_BEFORE", "NO_NORMALIZATION"])
def test_dense_crf_matches_cpu(backend, normalization):
    """The whole dense_crf (features, lattices, normalisers, iterations) on the backend: the CPU's
    bits on the emulated build; on a GPU torch's own CUDA maths (the normalisers' sqrt and
    division in double) may round differently, so close there."""
    img, scores = scene(2, 40, 50, 21, 7)
    data_dim = torch.tensor([[40, 50], [31, 44]])
    args = dict(pos_w=3, pos_xy_std=3, bi_w=4, bi_xy_std=20, bi_rgb_std=5, max_iter=10,
                data_dim=data_dim, normalization=normalization)
    cpu = dense_crf(scores, img, **args)
    with on(backend):
        dev = dense_crf(backend.to(scores), backend.to(img), **args).cpu()
    if backend.name == "emu":
        assert torch.equal(dev, cpu)
    torch.testing.assert_close(dev, cpu, atol=1e-4, rtol=0)
    assert float((dev.argmax(1) == cpu.argmax(1)).float().mean()) >= 0.999


def test_dense_crf_layer_matches_cpu(backend):
    """The Caffe DenseCRF layer (DeepLab's DENSE_CRF) with its blobs on the backend."""
    from layer_util import build
    from deeplab_caffe.data.transform import DEEPLAB_MEAN_BGR
    img, scores = scene(2, 18, 22, 4, 0)
    data = img - torch.tensor(DEEPLAB_MEAN_BGR).view(1, 3, 1, 1).float()
    data_dim = torch.tensor([[18, 22], [11, 15]], dtype=torch.float32).view(2, 1, 1, 2)
    params = {"dense_crf_param": {"max_iter": 10, "pos_w": [3.0], "pos_xy_std": [3.0],
                                  "bi_w": [4.0], "bi_xy_std": [121.0], "bi_rgb_std": [5.0]}}
    layer, _ = build("DenseCRF", params, [scores.shape, data_dim.shape, data.shape])
    (cpu,) = layer(scores, data_dim, data)
    with on(backend):
        (dev,) = layer(*(backend.to(t) for t in (scores, data_dim, data)))
    assert dev.device.type == backend.device
    if backend.name == "emu":
        assert torch.equal(dev, cpu)
    torch.testing.assert_close(dev.cpu(), cpu, atol=1e-4, rtol=0)


def test_mode_environment_is_checked(backend, monkeypatch):
    unary, kernels = _cuda_modes_case(3, "potts", 1)
    monkeypatch.setenv("DEEPLAB_CAFFE_CRF_CUDA", "fast")
    with on(backend), pytest.raises(CRFError, match="must be graph, fused or plain"):
        meanfield(backend.to(unary), kernels_to(backend, kernels), 2)


def test_hash_table_size_is_limited(backend):
    """Past 2^31 slots the insert's int32 slots would go negative: refused before anything is
    allocated (the features here are a broadcast view, a few bytes)."""
    too_many = torch.zeros(1, 2, device=backend.device).expand(2 ** 30 // 3 + 1, 2)
    with on(backend), pytest.raises(CRFError, match=r"at most 1073741824 \(2\^30\)"):
        build_lattice(too_many)


def test_hash_insert_stress_matches_cpu(backend):
    """Heavy collisions for the atomicCAS insert: many points on the same few keys (duplicates),
    tiny standard deviations (every other point its own far-apart vertices) and eight images
    sharing coordinates, so equal keys but for the image id race for neighbouring slots."""
    g = torch.Generator().manual_seed(3)
    for d in (2, 5):
        few = torch.randn(40, d, generator=g) * 2
        dup = few[torch.randint(0, 40, (12000,), generator=g)]
        tiny = torch.randint(-50, 50, (12000, d), generator=g).float() / 1e-3
        feats = torch.cat([dup, tiny])[torch.randperm(24000, generator=g)].contiguous()
        ids = torch.randint(0, 8, (24000,), generator=g, dtype=torch.int32)
        cpu = build_lattice(feats, ids)
        assert int(cpu.splat_ptr.diff().max()) >= 50  # dozens of entries race for one key
        with on(backend):
            dev = build_lattice(backend.to(feats), backend.to(ids))
        assert_same_lattice(cpu, dev)


@requires_emu
@pytest.mark.parametrize("fail", ["begin", "end", "instantiate"])
def test_graph_capture_failure_falls_back(monkeypatch, fail):
    """When capture or instantiation fails (the emulated runtime's hook), the iterations are
    launched directly: the same Q, and the runtime saw the failed capture."""
    from conftest import Backend
    backend = Backend("emu")
    unary, kernels = _cuda_modes_case(21, "potts", 2)
    ref = meanfield(unary, kernels, 3)
    monkeypatch.setenv("DEEPLAB_CAFFE_CRF_CUDA", "graph")
    monkeypatch.setenv("DEEPLAB_CAFFE_EMU_FAIL_CAPTURE", fail)
    emu.reset_runtime_stats()
    with on(backend):
        q = meanfield(unary, kernels, 3)
    stats = emu.runtime_stats()
    assert torch.equal(q, ref)
    assert stats["failed_captures"] == 1 and stats["graph_launches"] == 0
    monkeypatch.delenv("DEEPLAB_CAFFE_EMU_FAIL_CAPTURE")
    emu.reset_runtime_stats()
    with on(backend):
        assert torch.equal(meanfield(unary, kernels, 3), ref)
    stats = emu.runtime_stats()
    assert stats["captures"] == 1 and stats["graph_launches"] == 3


def test_more_labels_than_one_tile_holds(tmp_path):
    """Past 12288 labels one row does not fit the fused update's shared memory (tile 0): the
    update runs unfused on CUDA (it once divided by zero, SIGFPE) and the host twin leaves it
    to the CPU update (it once looped forever).  In a subprocess, so a crash or a hang fails
    the test instead of the run."""
    script = tmp_path / "many_labels.py"
    script.write_text(_MANY_LABELS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "twin ok" in proc.stdout
    if emu.available():
        assert "emu graph ok" in proc.stdout and "emu plain ok" in proc.stdout
    if torch.cuda.is_available():
        assert "cuda graph ok" in proc.stdout


_MANY_LABELS = """
import os, sys, torch
sys.path.insert(0, %r)
from deeplab_caffe import emu
from deeplab_caffe.crf import dense_crf
from deeplab_caffe.crf.dense_crf import kernel_norms
from deeplab_caffe.ops import crf
from test_crf_lattice import grid_features
torch.manual_seed(0)
L = 12289
unary = torch.rand(6 * 7, L)
lat = crf.build_lattice(grid_features(6, 7, 2.0))
ks = [crf.Kernel(lat, *kernel_norms(lat, "NORMALIZE_AFTER"), torch.full((L,), -3.0))]
ref = crf.meanfield(unary, ks, 3)
os.environ["DEEPLAB_CAFFE_CRF_CPU"] = "cuda-twin"
assert torch.equal(crf.meanfield(unary, ks, 3), ref)
print("twin ok", flush=True)
del os.environ["DEEPLAB_CAFFE_CRF_CPU"]
backends = []
if emu.available():
    backends.append(("emu", emu.ops, "cpu"))
if torch.cuda.is_available():
    backends.append(("cuda", torch.ops.deeplab_caffe, "cuda"))
for name, ops, dev in backends:
    crf._ops = ops
    dks = [crf.Kernel(type(lat)(*(t.to(dev) for t in lat)), k.norm_before.to(dev),
                      k.norm_after.to(dev), k.compat.to(dev)) for k in ks]
    for mode in ("graph", "fused", "plain"):
        os.environ["DEEPLAB_CAFFE_CRF_CUDA"] = mode
        assert torch.equal(crf.meanfield(unary.to(dev), dks, 3).cpu(), ref), (name, mode)
        print(name, mode, "ok", flush=True)
""" % os.path.dirname(os.path.abspath(__file__))


@contextlib.contextmanager
def callers_capture(backend):
    """The caller's graph capture around the ops (torch.cuda.graph, or its emulated twin);
    yields a function that replays the captured graph."""
    if backend.name == "emu":
        with emu.capture() as cap:
            yield cap.replay
        return
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        yield graph.replay


def test_meanfield_inside_a_callers_graph(backend):
    """Inside the caller's capture the iterations join it (no graph of our own: capturing a
    stream already being captured is refused); replaying the caller's graph gives the CPU's
    Q, twice over (the replay reruns the captured softmax from the unary first)."""
    unary, kernels = _cuda_modes_case(21, "potts", 6)
    ref = meanfield(unary, kernels, 4)
    gk, gu = kernels_to(backend, kernels), backend.to(unary)
    with on(backend):
        meanfield(gu, gk, 4)  # warm-up outside the capture (allocations, modules)
        with callers_capture(backend) as replay:
            q = meanfield(gu, gk, 4)
    for _ in range(2):
        q.zero_()
        replay()
        if backend.name == "cuda":
            torch.cuda.synchronize()
        assert torch.equal(q.cpu(), ref)
