"""The base of data layers (Caffe's BaseDataLayer): layers without bottoms.

Device: every data layer registers an empty non-persistent buffer, so ``layer.to(device)``
moves it and ``layer.device`` says where tops are produced.  Tops are float32.
"""
import torch

from .base import Layer


class DataLayer(Layer):
    """Layers without bottoms: ``setup([])`` gives the top shapes, ``forward()`` the tops."""
    exact_num_bottom = 0

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)

    @property
    def device(self):
        return self._device_anchor.device

    def _set_top_buffer(self, i, tensor):
        name = f"_top_{i}"
        if name in self._buffers:
            setattr(self, name, tensor)
        else:
            self.register_buffer(name, tensor, persistent=False)

    def _top_buffer(self, i):
        return self._buffers[f"_top_{i}"]


def blob_shape(msg):
    """A BlobShape Message -> tuple of dims."""
    return tuple(int(d) for d in msg.getlist("dim"))
