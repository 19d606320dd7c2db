import pytest
import torch

CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")

# The tests use tiny tensors, for which thread start-up costs more than it saves (on a busy
# 2-core machine 10x more).  Tests that exercise the threaded kernels run in a subprocess.
torch.set_num_threads(1)
