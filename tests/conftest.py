import pytest
import torch

from deeplab_caffe import emu

CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
EMU = emu.available()
requires_emu = pytest.mark.skipif(not EMU, reason=f"needs the emulated-CUDA build: {emu.reason()}")

# The tests use tiny tensors, for which thread start-up costs more than it saves (on a busy
# 2-core machine 10x more).  Tests that exercise the threaded kernels run in a subprocess.
torch.set_num_threads(1)


class Backend:
    """Where a CUDA-vs-CPU test runs the CUDA kernels.

    "cuda": the real GPU (CUDA tensors, torch.ops.deeplab_caffe); "emu": the emulated-CUDA build
    (CPU tensors, torch.ops.deeplab_caffe_emu).  ``to`` moves an input to the backend's device;
    ``same_blas`` is True when the backend's GEMMs are the CPU's (so whole convolutions are bit
    equal to the CPU twin, not only the kernels)."""

    def __init__(self, name):
        self.name = name
        self.device = "cuda" if name == "cuda" else "cpu"
        self.ops = torch.ops.deeplab_caffe if name == "cuda" else emu.ops
        self.same_blas = name == "emu"

    def to(self, t):
        return None if t is None else t.to(self.device)

    def __repr__(self):
        return self.name


# "cuda" only where there is a GPU: elsewhere the emu variant of the same test is the one that
# runs, so a CPU machine does not count a skip for every test.  "emu" always, skipped with the
# reason where the emulated build is absent.
BACKENDS = ([pytest.param("cuda", id="cuda")] if CUDA else []) + \
    [pytest.param("emu", marks=requires_emu, id="emu")]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Parametrizes a test over the backends that run the CUDA kernels (see Backend)."""
    return Backend(request.param)
