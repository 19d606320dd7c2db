"""Fully connected CRF (Krähenbühl & Koltun) on a permutohedral lattice, CPU and CUDA.

``dense_crf`` is DeepLab's DenseCRF (batched torch tensors); ``densecrf`` and ``utils`` mirror
``pydensecrf.densecrf`` and ``pydensecrf.utils`` so ``import deeplab_caffe.crf.densecrf as dcrf``
replaces ``import pydensecrf.densecrf as dcrf``.
"""
from . import densecrf, utils  # noqa: F401
from .dense_crf import (NO_NORMALIZATION, NORMALIZE_AFTER, NORMALIZE_BEFORE,  # noqa: F401
                        NORMALIZE_SYMMETRIC, dense_crf)
from .densecrf import CONST_KERNEL, DIAG_KERNEL, FULL_KERNEL, DenseCRF, DenseCRF2D  # noqa: F401
from ..ops.crf import Kernel, Lattice, build_lattice, lattice_filter, meanfield  # noqa: F401
