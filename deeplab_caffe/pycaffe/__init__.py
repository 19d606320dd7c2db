"""pycaffe's API over deeplab_caffe: ``import deeplab_caffe.pycaffe as caffe`` runs pycaffe
scripts, and ``shim_path()`` is a directory whose ``caffe`` package re-exports this one, for
scripts that say ``import caffe`` (opt in with PYTHONPATH; never installed as ``caffe``).

Needs the ``protobuf`` package (for ``caffe_pb2``); the rest of deeplab_caffe does not.
"""
import torch

from .. import mode as _mode
from ..layers import LAYER_REGISTRY as _LAYER_REGISTRY
from . import io  # noqa: F401
from ..blob import Blob  # noqa: F401
from .net import TEST, TRAIN, Layer, Net  # noqa: F401
from .net_spec import NetSpec, layers, params, to_proto  # noqa: F401
from .proto import caffe_pb2  # noqa: F401
from .shim import shim_path  # noqa: F401
from .solver import (AdaDeltaSolver, AdaGradSolver, AdamSolver, NesterovSolver,  # noqa: F401
                     RMSPropSolver, SGDSolver, get_solver)
from .classifier import Classifier  # noqa: F401
from .detector import Detector  # noqa: F401
from . import proto  # noqa: F401,E402

set_mode_cpu = _mode.set_mode_cpu
set_mode_gpu = _mode.set_mode_gpu
set_device = _mode.set_device


def set_random_seed(seed):
    """Caffe::set_random_seed: seeds the generators fillers and random layers draw from."""
    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))


def layer_type_list():
    """The registered layer types (Caffe's LayerRegistry::LayerTypeList), sorted."""
    from ..layers import _all  # noqa: F401  (every layer module registers its types)
    return sorted(_LAYER_REGISTRY)


def has_nccl():
    """pycaffe's has_nccl: this build has no NCCL (multi-GPU runs use torch.distributed)."""
    return False


def solver_count():
    return 1


def solver_rank():
    return 0


def set_multiprocess(value):
    pass
