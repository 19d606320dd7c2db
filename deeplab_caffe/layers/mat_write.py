"""MatWrite (DeepLab v1 MAT_WRITE): saves each bottom to disk every ``period`` forwards.

``mat_write_param { prefix (required) source strip (0) period (1) }``.  The i-th forward (from
0) writes when i % period == 0: bottom b goes to ``<prefix><name>_blob_<b>.mat``, a MATLAB v5
file as DeepLab's Blob::ToMat writes it (variable ``data``, class single, dims [W, H, C, N]; see
io/matfile.py).  ``name`` is the i-th entry of ``source`` (first word of each line, minus
``strip`` trailing characters) or ``iter_<i>`` without a source.  ``layer.file_format = "npy"``
writes ``.npy`` files instead (the blob as is, N x C x H x W float32).  Missing folders under the
prefix are created.  No tops, no gradient.
"""
import os

import numpy as np
import torch

from ..errors import CaffeError
from ..io.matfile import feature_file, source_names, write_blob_mat
from ..io._files import atomic_write
from ._params import scalar
from .base import Layer, register

FILE_FORMATS = ("mat", "npy")


def name_list(layer, p):
    """(source, strip) of a mat_write_param / mat_read_param, checked as DeepLab's LayerSetUp
    checks them (MatRead shares the naming rule)."""
    strip = int(scalar(p, "strip", 0))
    if strip < 0:
        raise layer.error(f"strip cannot be negative, got {strip}")
    return scalar(p, "source"), strip


def read_name_list(layer):
    """The names of ``layer.source`` (a NetError naming the layer when it cannot be read)."""
    try:
        return source_names(layer.source, layer.strip)
    except CaffeError as e:
        raise layer.error(str(e)) from None


@register("MatWrite")
class MatWriteLayer(Layer):
    exact_num_top = 0           # DeepLab declares no bottom count: none writes nothing
    file_format = "mat"

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("mat_write_param")
        if not p.has("prefix"):
            raise self.error("MatWrite needs mat_write_param { prefix }")
        self.prefix = str(scalar(p, "prefix"))
        self.period = int(scalar(p, "period", 1))
        if self.period <= 0:
            raise self.error(f"period must be positive, got {self.period}")
        self.source, self.strip = name_list(self, p)
        self.names = None
        self.iter = 0

    def layer_setup(self, bottom_shapes):
        for b, s in enumerate(bottom_shapes):
            if len(s) > 4:
                raise self.error(f"bottom {b} has {len(s)} axes; MatWrite writes at most 4")
        if self.source is not None:
            self.names = read_name_list(self)
        return []

    def file_stem(self, i):
        if self.source is None:
            return f"{self.prefix}iter_{i}"
        if self.names is None:
            self.names = read_name_list(self)
        if i >= len(self.names):
            raise self.error(f"forward #{i} but source '{self.source}' lists only "
                             f"{len(self.names)} names (test ran for more iterations than it "
                             f"was supposed to)")
        return self.prefix + self.names[i]

    @torch.no_grad()
    def forward(self, *bottoms):
        if self.file_format not in FILE_FORMATS:
            raise self.error(f"file_format must be one of {FILE_FORMATS}, got "
                             f"{self.file_format!r}")
        i = self.iter
        self.iter += 1
        if i % self.period:
            return ()
        stem = self.file_stem(i)
        folder = os.path.dirname(stem)
        if folder:
            os.makedirs(folder, exist_ok=True)
        for b, x in enumerate(bottoms):
            path = feature_file(stem, "", b, "." + self.file_format)
            if self.file_format == "mat":
                write_blob_mat(path, x)
            else:
                # Atomic (a full disk leaves no half file; WriteError names the file).
                with atomic_write(path, fsync=False) as f:
                    np.save(f, x.detach().cpu().numpy())
        return ()
