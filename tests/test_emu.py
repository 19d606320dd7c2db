"""The emulated-CUDA build itself: its op library mirrors deeplab_caffe's, and its runtime
captures and replays launches as CUDA graphs do (the lattice glue's graph path relies on it)."""
import pytest
import torch

from deeplab_caffe import emu

from conftest import requires_emu

pytestmark = requires_emu

CPU = torch.ops.deeplab_caffe


def schemas(namespace):
    out = {}
    for s in torch._C._jit_get_all_schemas():
        if s.name.startswith(namespace + "::"):
            out[s.name.split("::", 1)[1]] = str(s).split("::", 1)[1]
    return out


def test_emulated_ops_have_the_real_schemas():
    real = schemas("deeplab_caffe")
    assert {"im2col_hole", "col2im_hole", "conv2d_hole", "conv2d_hole_backward",
            "permutohedral_build", "permutohedral_filter", "dense_crf_meanfield"} <= set(real)
    assert schemas("deeplab_caffe_emu") == real


def im2col_args():
    return (3, 3), (2, 2), (1, 1), (2, 2)


def test_callers_capture_records_launches_and_replay_runs_them():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 9)
    emu.reset_runtime_stats()
    with emu.capture() as graph:
        cols = emu.ops.im2col_hole(x, *im2col_args())
    stats = emu.runtime_stats()
    assert stats["captured_launches"] == 1 and stats["direct_launches"] == 0
    graph.replay()
    assert torch.equal(cols, CPU.im2col_hole(x, *im2col_args()))
    # A replay re-reads the captured pointers: new input values, same buffers.
    x.mul_(-3)
    graph.replay()
    assert torch.equal(cols, CPU.im2col_hole(x, *im2col_args()))
    assert emu.runtime_stats()["graph_launches"] == 2


def test_capture_keeps_memory_the_op_released():
    # conv2d_hole's column buffer is freed when the op returns, but its captured im2col writes
    # into it on every replay: the graph keeps it (and everything else released in the block).
    torch.manual_seed(1)
    x, w = torch.randn(1, 2, 7, 7), torch.randn(3, 2, 3, 3)
    with emu.capture() as graph:
        emu.ops.conv2d_hole(x, w, None, [1, 1], [2, 2], [2, 2], 1)
    assert graph.held_allocations() >= 1
    graph.replay()


def test_capture_on_the_legacy_stream_is_refused():
    with pytest.raises(RuntimeError, match="legacy stream"):
        emu._state["ext"].capture_begin(on_legacy_stream=True)


@pytest.mark.parametrize("step", ["begin", "end", "instantiate"])
def test_failure_hook_makes_capture_fail(step, monkeypatch):
    monkeypatch.setenv("DEEPLAB_CAFFE_EMU_FAIL_CAPTURE", step)
    emu.reset_runtime_stats()
    with pytest.raises(RuntimeError, match="emulated capture"):
        with emu.capture():
            emu.ops.im2col_hole(torch.randn(1, 1, 5, 5), *im2col_args())
    assert emu.runtime_stats()["failed_captures"] == 1
    monkeypatch.delenv("DEEPLAB_CAFFE_EMU_FAIL_CAPTURE")
    with emu.capture() as graph:  # the runtime is usable again
        cols = emu.ops.im2col_hole(torch.ones(1, 1, 5, 5), *im2col_args())
    graph.replay()
    assert torch.equal(cols, CPU.im2col_hole(torch.ones(1, 1, 5, 5), *im2col_args()))
