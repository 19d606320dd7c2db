"""MatRead (DeepLab MAT_READ): a data layer whose batch comes from MAT files, the ones MatWrite
writes (DeepLab's mat_read_layer.cpp).

``mat_read_param { prefix (required) source strip (0) batch_size (1) }``.  Each image of a batch reads
``<prefix><name>_blob_0.mat`` (io/matfile.py: Blob::FromMat), ``name`` being the next entry of
``source`` (first word of each line, minus ``strip`` trailing characters; the list starts over
after its last entry) or ``iter_<k>`` (k = 0, 1, ... never wrapping) without a source.  Every file
holds one image (num 1); the top is batch_size x C x H x W, the shape of the first file, and every
later file must have that shape.  No backward.

The 2015 fork's Forward_cpu checks each file but never copies it into the top (its top stays at
its initial values); DeepLab's later release copies image n into top[n], and so do we.
"""
import torch

from ..errors import CaffeError
from ..io.matfile import feature_file, read_blob_mat
from ._params import scalar
from .base import register
from .base_data import DataLayer
from .mat_write import name_list, read_name_list


@register("MatRead")
class MatReadLayer(DataLayer):
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("mat_read_param")
        if not p.has("prefix"):
            raise self.error("MatRead needs mat_read_param { prefix }")
        self.prefix = str(scalar(p, "prefix"))
        self.batch_size = int(scalar(p, "batch_size", 1))
        if self.batch_size <= 0:
            raise self.error(f"batch_size must be positive, got {self.batch_size}")
        self.source, self.strip = name_list(self, p)
        self.names = None
        self.iter = 0

    def layer_setup(self, bottom_shapes):
        if self.source is not None:
            self.names = read_name_list(self)
            if not self.names:
                raise self.error(f"source '{self.source}' lists no names")
        first = self._read(self._name(0))
        self.image_shape = tuple(first.shape[1:])
        return [(self.batch_size,) + self.image_shape]

    def _name(self, k):
        return self.names[k] if self.names is not None else f"iter_{k}"

    def _read(self, name):
        path = feature_file(self.prefix, name, 0)
        try:
            blob = read_blob_mat(path)
        except CaffeError as e:
            raise self.error(str(e)) from None
        if blob.shape[0] != 1:
            raise self.error(f"MAT file {path} holds num {blob.shape[0]}; MatRead reads one "
                             "image (num 1) per file")
        if hasattr(self, "image_shape") and tuple(blob.shape[1:]) != self.image_shape:
            raise self.error(f"MAT file {path} has shape {tuple(blob.shape[1:])}, the top "
                             f"expects {self.image_shape} (channels, height, width)")
        return blob

    @torch.no_grad()
    def forward(self):
        images = []
        for _ in range(self.batch_size):
            if self.names is not None and self.iter >= len(self.names):
                self.iter = 0
            images.append(torch.from_numpy(self._read(self._name(self.iter))))
            self.iter += 1
        return (torch.cat(images).to(self.device),)
