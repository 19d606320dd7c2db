"""Fully connected CRF (Krähenbühl & Koltun) on a permutohedral lattice, CPU and CUDA.

Modules:
  dense_crf.py   ``dense_crf``: DeepLab v1's DenseCRF semantics on batched torch tensors;
  params.py      its argument checks (shared with the DenseCRF layer) and ``CRFParams``;
  pairwise.py    normalisation modes and label compatibility, shared by both front-ends;
  trainable.py   the differentiable mean field (autograd over the lattice filter and its
                 adjoint), CRF-RNN's iteration and ``MeanFieldCRF``, its learnable module;
  densecrf.py, utils.py   pydensecrf's API under pydensecrf's module names, so
                 ``import deeplab_caffe.crf.densecrf as dcrf`` replaces
                 ``import pydensecrf.densecrf as dcrf`` (public paths: keep these names).
"""
from . import densecrf, utils  # noqa: F401
from .dense_crf import dense_crf  # noqa: F401
from .pairwise import (NO_NORMALIZATION, NORMALIZE_AFTER, NORMALIZE_BEFORE,  # noqa: F401
                       NORMALIZE_SYMMETRIC)
from .params import CRFParams  # noqa: F401
from .trainable import MeanFieldCRF, meanfield_logits, meanfield_trainable  # noqa: F401
from .densecrf import CONST_KERNEL, DIAG_KERNEL, FULL_KERNEL, DenseCRF, DenseCRF2D  # noqa: F401
from ..ops.crf import Kernel, Lattice, build_lattice, lattice_filter, meanfield  # noqa: F401
