"""What densecrf calls a pairwise potential, shared by both front-ends (``dense_crf`` and the
pydensecrf-compatible ``densecrf``): the normalisation modes and their per-point scales, and the
label compatibility as the mean-field op takes it."""
from numbers import Number

import numpy as np
import torch

from ..errors import CRFError
from ..ops.crf import lattice_filter

NO_NORMALIZATION, NORMALIZE_BEFORE, NORMALIZE_AFTER, NORMALIZE_SYMMETRIC = 0, 1, 2, 3
_NORM_NAMES = {"NO_NORMALIZATION": 0, "NORMALIZE_BEFORE": 1, "NORMALIZE_AFTER": 2,
               "NORMALIZE_SYMMETRIC": 3}


def normalization_code(normalization):
    """0..3 from a pydensecrf constant or its name."""
    if isinstance(normalization, str) and normalization.upper() in _NORM_NAMES:
        return _NORM_NAMES[normalization.upper()]
    if isinstance(normalization, (int,)) and not isinstance(normalization, bool) and \
            0 <= int(normalization) <= 3:
        return int(normalization)
    raise CRFError(f"normalization must be one of {sorted(_NORM_NAMES)} (or 0..3), "
                   f"got {normalization!r}")


def kernel_norms(lattice, normalization):
    """(norm_before, norm_after) per-point scales for a normalisation mode, as densecrf computes
    them: the lattice applied to ones, then 1/(n + 1e-20) or 1/sqrt(n + 1e-20) in double."""
    code = normalization_code(normalization)
    P = lattice.num_points
    empty = torch.empty(0, dtype=torch.float32, device=lattice.offsets.device)
    if code == NO_NORMALIZATION:
        return empty, empty
    ones = torch.ones(P, 1, dtype=torch.float32, device=lattice.offsets.device)
    m = lattice_filter(ones, lattice)[:, 0]
    if m.device.type == "cpu":
        # numpy's single thread, same IEEE operations: on a busy machine each of these small ops
        # on torch's threads waited tens of ms for a descheduled one (200 ms for the three).
        n = m.numpy().astype(np.float64) + 1e-20
        s = (1.0 / (np.sqrt(n) if code == NORMALIZE_SYMMETRIC else n)).astype(np.float32)
        s = torch.from_numpy(s)
    else:
        n = m.double() + 1e-20
        s = (1.0 / (torch.sqrt(n) if code == NORMALIZE_SYMMETRIC else n)).float()
    if code == NORMALIZE_SYMMETRIC:
        return s, s
    return (s, empty) if code == NORMALIZE_BEFORE else (empty, s)


def compat_tensor(compat, num_labels, device):
    """densecrf's label compatibility as the tensor the mean-field op takes: a number is Potts
    (stored as the diagonal -w), a vector is Diagonal, a matrix is symmetrised as densecrf does."""
    if isinstance(compat, Number) and not isinstance(compat, bool):
        if compat != compat or abs(compat) == float("inf"):
            raise CRFError(f"compat must be finite, got {compat}")
        return torch.full((num_labels,), -float(compat), dtype=torch.float32, device=device)
    c = torch.as_tensor(compat)
    if not c.dtype.is_floating_point:
        c = c.float()
    c = c.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(c).all()):
        raise CRFError("compat contains non-finite values")
    if c.dim() == 1 and c.shape[0] == num_labels:
        return c.contiguous()
    if c.dim() == 2 and tuple(c.shape) == (num_labels, num_labels):
        return (0.5 * (c + c.t())).contiguous()
    raise CRFError(f"compat must be a number, a ({num_labels},) vector or a ({num_labels}, "
                   f"{num_labels}) matrix, got shape {tuple(c.shape)}")
