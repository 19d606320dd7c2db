"""deeplab_caffe: DeepLab v1 rebuilt Caffe-style on PyTorch.

Importing the package loads the compiled extension ``deeplab_caffe._C``, which registers the
custom ops under ``torch.ops.deeplab_caffe``.
"""
from . import runtime_env

# Before torch loads: its OpenMP runtime reads the wait policy and thread count only then.
runtime_env.configure()

import torch  # noqa: F401  (must be imported before the extension)

from . import _C  # noqa: F401
from . import emu  # noqa: F401
from . import io  # noqa: F401
from .errors import (CaffeError, CRFError, NetError, PrototxtError, WireError,  # noqa: F401
                     WriteError)
from .mode import set_device, set_mode_cpu, set_mode_gpu  # noqa: F401
from .net import Net  # noqa: F401
from .solver import SGDSolver  # noqa: F401

__version__ = "0.1.0"


def build_info():
    """How the extension was built: with_cuda, cuda_version, compiler, and the torch in use.

    Put this in bug reports."""
    info = dict(_C.build_info())
    info["torch_version"] = torch.__version__
    info["cuda_available"] = torch.cuda.is_available()
    return info


def __getattr__(name):
    # The CRF package is imported on first use (it is large and optional for most nets).
    if name == "crf":
        import importlib
        return importlib.import_module(".crf", __name__)
    raise AttributeError(f"module 'deeplab_caffe' has no attribute {name!r}")
