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
from ._params import scalar
from .base import Layer, register

FILE_FORMATS = ("mat", "npy")


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
        self.strip = int(scalar(p, "strip", 0))
        if self.strip < 0:
            raise self.error(f"strip cannot be negative, got {self.strip}")
        self.source = scalar(p, "source")
        self.names = None
        self.iter = 0

    def _read_source(self):
        try:
            return source_names(self.source, self.strip)
        except CaffeError as e:
            raise self.error(str(e)) from None

    def layer_setup(self, bottom_shapes):
        for b, s in enumerate(bottom_shapes):
            if len(s) > 4:
                raise self.error(f"bottom {b} has {len(s)} axes; MatWrite writes at most 4")
        if self.source is not None:
            self.names = self._read_source()
        return []

    def file_stem(self, i):
        if self.source is None:
            return f"{self.prefix}iter_{i}"
        if self.names is None:
            self.names = self._read_source()
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
                np.save(path, x.detach().cpu().numpy())
        return ()
