"""pycaffe-compatible mode helpers.  They only set the default device new nets and solvers use;
an explicit ``device=`` always wins."""
import torch

_default = {"device": "cpu"}


def set_mode_cpu():
    _default["device"] = "cpu"


def set_mode_gpu():
    if not torch.cuda.is_available():
        raise RuntimeError("set_mode_gpu: no CUDA GPU is available to this process")
    idx = _default["device"].index if isinstance(_default["device"], torch.device) else None
    _default["device"] = f"cuda:{idx or 0}"


def set_device(device_id):
    """Caffe's set_device: the GPU index used in GPU mode."""
    _default["device"] = f"cuda:{int(device_id)}"


def resolve_device(device=None):
    return torch.device(device if device is not None else _default["device"])
