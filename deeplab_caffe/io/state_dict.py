"""The ``.pt`` weight file: a plain torch state dict of Caffe blobs.

The layout is ``{"<layer>.<i>": tensor}`` (blob i of layer <layer>, Caffe's shapes, float32);
``{"<layer>": [tensors]}`` is accepted too.  It is loaded with ``torch.load(weights_only=True)``,
so a weight file can never run code.
"""
import os
import re

from ..errors import CaffeError
from ._files import atomic_write
from .blobs import require_blobs
from .caffemodel import CaffeLayer, CaffeModel

PT_SUFFIXES = (".pt", ".pth")
_KEY = re.compile(r"^(.*)\.(\d+)$")


def is_pt(path):
    """Whether ``path`` is (or, for a file still to be written, is named as) a .pt file."""
    if os.fspath(path).endswith(PT_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"   # torch.save's zip container
    except OSError:
        return False


def read_pt(path):
    """A CaffeModel (``.format == "pt"``, layer types "") from a .pt state dict."""
    import torch
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # torch raises many types for a bad file; name the file
        raise CaffeError(f"{path}: not a weights-only torch file: {e}") from None
    if not isinstance(sd, dict):
        raise CaffeError(f"{path}: expected a dict of tensors, got {type(sd).__name__}")
    blobs = {}
    for key, value in sd.items():
        if isinstance(value, (list, tuple)):
            blobs.setdefault(key, {}).update(enumerate(value))
            continue
        m = _KEY.match(str(key))
        if m is None or not hasattr(value, "numpy"):
            raise CaffeError(f"{path}: key {key!r} is not '<layer>.<blob index>' -> tensor")
        blobs.setdefault(m.group(1), {})[int(m.group(2))] = value
    layers = []
    for name, by_index in blobs.items():
        if sorted(by_index) != list(range(len(by_index))):
            raise CaffeError(f"{path}: layer '{name}' has blob indices {sorted(by_index)}")
        arrays = [by_index[i].detach().cpu().float().numpy() for i in range(len(by_index))]
        layers.append(CaffeLayer(name, "", arrays))
    return CaffeModel("", layers, "pt", "", "torch state dict", os.fspath(path))


def save_pt(path, model):
    """Write ``{"<layer>.<i>": tensor}`` for a CaffeModel or a list of layers (atomic)."""
    import torch
    layers = model.layers if hasattr(model, "layers") else model
    sd = {}
    for layer in layers:
        require_blobs(layer.name, layer.blobs)
        for i, b in enumerate(layer.blobs):
            sd[f"{layer.name}.{i}"] = torch.as_tensor(b).detach().cpu().contiguous().clone()
    with atomic_write(path) as f:
        torch.save(sd, f)
    return sd
