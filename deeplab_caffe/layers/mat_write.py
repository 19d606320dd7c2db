"""MatWrite (DeepLab v1 MAT_WRITE): saves each bottom to disk every ``period`` forwards.

``mat_write_param { prefix (required) source strip (0) period (1) }``.  The i-th forward (from
0) writes when i % period == 0: bottom b goes to ``<prefix><name>_blob_<b>.npy`` (the blob as is,
N x C x H x W) and, when scipy is importable, ``.mat`` with variable ``data`` laid out
[W, H, C, N] like Caffe's Blob::ToMat.  ``name`` is the i-th entry of ``source`` (first word of
each line, minus ``strip`` trailing characters) or ``iter_<i>`` without a source.  Missing
folders under the prefix are created.  No tops, no gradient.
"""
import os

import numpy as np
import torch

from ..io._files import atomic_write
from ._params import scalar
from .base import Layer, register


@register("MatWrite")
class MatWriteLayer(Layer):
    exact_num_top = 0           # DeepLab declares no bottom count: none writes nothing

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
            with open(self.source) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise self.error(f"cannot read source '{self.source}': {e.strerror}") from None
        names = []
        for n, line in enumerate(lines, 1):
            words = line.split()
            if not words:
                continue
            if len(words[0]) <= self.strip:
                raise self.error(f"source '{self.source}' line {n}: strip {self.strip} removes "
                                 f"all of '{words[0]}'")
            names.append(words[0][:len(words[0]) - self.strip])
        return names

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
        i = self.iter
        self.iter += 1
        if i % self.period:
            return ()
        stem = self.file_stem(i)
        folder = os.path.dirname(stem)
        if folder:
            os.makedirs(folder, exist_ok=True)
        try:
            from scipy.io import savemat
        except ImportError:
            savemat = None
        for b, x in enumerate(bottoms):
            arr = x.detach().cpu().numpy()
            # Atomic (a full disk leaves no half file; WriteError names the file).
            with atomic_write(f"{stem}_blob_{b}.npy", fsync=False) as f:
                np.save(f, arr)
            if savemat is not None:
                # Caffe's legacy N, C, H, W accessors give 1 for missing trailing axes.
                a4 = arr.reshape(arr.shape + (1,) * (4 - arr.ndim))
                data = np.ascontiguousarray(a4.transpose(3, 2, 1, 0))
                with atomic_write(f"{stem}_blob_{b}.mat", fsync=False) as f:
                    savemat(f, {"data": data})
        return ()
