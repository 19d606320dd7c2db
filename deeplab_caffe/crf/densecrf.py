"""Drop-in for ``pydensecrf.densecrf``: same class, method, constant and argument names.

    import deeplab_caffe.crf.densecrf as dcrf      # instead of: import pydensecrf.densecrf as dcrf
    d = dcrf.DenseCRF2D(W, H, n_labels)             # optionally device="cuda"
    d.setUnaryEnergy(U)                             # (n_labels, W*H) float32, C-order
    d.addPairwiseGaussian(sxy=3, compat=3)
    d.addPairwiseBilateral(sxy=80, srgb=13, rgbim=img, compat=10)   # img (H, W, 3) uint8
    Q = d.inference(5)                              # (n_labels, W*H)

Semantics are densecrf v2's (pydensecrf's): the defaults are DIAG_KERNEL and NORMALIZE_SYMMETRIC,
a number as compat is Potts, a vector Diagonal, a matrix is symmetrised.  KernelType only matters
for learning, which pydensecrf does not wrap either; it is accepted and recorded.

Arrays: numpy (float32, C-contiguous, like pydensecrf) or any DLPack array (torch, cupy), which is
used in place on its device without a copy.  Results follow the unary: a numpy unary gives numpy
results, anything else gives torch tensors on the CRF's device (cupy reads them via DLPack).
"""
from numbers import Number

import numpy as np
import torch

from ..errors import CRFError
from ..ops.crf import Kernel, build_lattice, lattice_filter, meanfield
from .pairwise import (NO_NORMALIZATION, NORMALIZE_AFTER, NORMALIZE_BEFORE,  # noqa: F401
                       NORMALIZE_SYMMETRIC, compat_tensor, kernel_norms)
from .tensor_ops import all_finite, transposed

CONST_KERNEL, DIAG_KERNEL, FULL_KERNEL = 0, 1, 2


def _to_tensor(a, name, dtype=torch.float32, ndim=None, device=None):
    """numpy or DLPack array -> torch tensor (zero-copy where the dtype already matches)."""
    if isinstance(a, torch.Tensor):
        t = a
    elif isinstance(a, np.ndarray):
        if a.dtype != np.dtype(dtype_name(dtype)):
            raise CRFError(f"{name} must be {dtype_name(dtype)}, got {a.dtype} (Buffer dtype "
                           f"mismatch in pydensecrf's words)")
        t = torch.from_numpy(np.ascontiguousarray(a))
    elif hasattr(a, "__dlpack__"):
        t = torch.from_dlpack(a)
    else:
        raise CRFError(f"{name} must be a numpy, torch or DLPack array, got {type(a).__name__}")
    if t.dtype != dtype:
        raise CRFError(f"{name} must be {dtype_name(dtype)}, got {t.dtype}")
    if ndim is not None and t.dim() != ndim:
        raise CRFError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    if device is not None:
        t = t.to(device)
    return t.contiguous()


def dtype_name(dtype):
    return {torch.float32: "float32", torch.uint8: "uint8"}[dtype]


class DenseCRF:
    """Fully connected CRF over nvar variables and nlabels labels (pydensecrf's DenseCRF)."""

    def __init__(self, nvar, nlabels, device=None):
        if int(nvar) < 1:
            raise CRFError(f"nvar must be >= 1, got {nvar}")
        if int(nlabels) < 2:
            raise CRFError(f"nlabels must be >= 2, got {nlabels}")
        self._nvar, self._nlabel = int(nvar), int(nlabels)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._unary = None
        self._numpy_out = True
        self._kernels = []          # Kernel tuples
        self._kernel_types = []

    # -- energies -------------------------------------------------------------------------------
    def setUnaryEnergy(self, u, f=None):
        """u: (nlabels, nvar) float32 unary energies (negative log-probabilities)."""
        if f is not None:
            raise CRFError("setUnaryEnergy: the learned logistic unary (f=...) is not supported; "
                           "pass the energies directly")
        self._numpy_out = isinstance(u, np.ndarray)
        t = _to_tensor(u, "unary", ndim=2)
        if tuple(t.shape) != (self._nlabel, self._nvar):
            raise CRFError(f"Bad shape for unary energy (Need {(self._nlabel, self._nvar)}, got "
                           f"{tuple(t.shape)})")
        if not all_finite(t):
            raise CRFError("unary contains non-finite values (NaN or inf)")
        if self.device.type == "cpu" and t.device.type != "cpu":
            self.device = t.device
        t = t.to(self.device)
        # (nvar, nlabels).  On the CPU a copy (pydensecrf copies too) kept in pydensecrf's layout
        # and seen transposed: the mean-field op reads that layout in place and returns Q in it,
        # so neither the unary nor Q is transposed here (10-15 ms at 513x513).
        self._unary = t.clone().t() if self.device.type == "cpu" else transposed(t)

    def addPairwiseEnergy(self, features, compat, kernel=DIAG_KERNEL,
                          normalization=NORMALIZE_SYMMETRIC):
        """features: (d, nvar) float32, already divided by their stds (1 <= d <= 16)."""
        f = _to_tensor(features, "features", ndim=2)
        if f.shape[1] != self._nvar:
            raise CRFError(f"Bad shape for pairwise energy (Need (?, {self._nvar}), got "
                           f"{tuple(f.shape)})")
        self._add_kernel(f.to(self.device).t().contiguous(), compat, kernel, normalization)

    def _add_kernel(self, features, compat, kernel, normalization):
        """addPairwiseEnergy from features already (nvar, d) on the CRF's device."""
        if kernel not in (CONST_KERNEL, DIAG_KERNEL, FULL_KERNEL):
            raise CRFError(f"kernel must be CONST_KERNEL, DIAG_KERNEL or FULL_KERNEL, "
                           f"got {kernel!r}")
        # pad_to=4: pydensecrf's lattice, padding points included (see build_lattice).
        lat = build_lattice(features, pad_to=4)
        before, after = kernel_norms(lat, normalization)
        self._kernels.append(Kernel(lat, before, after,
                                    compat_tensor(compat, self._nlabel, self.device)))
        self._kernel_types.append(kernel)

    # -- inference ------------------------------------------------------------------------------
    def _unary_or_zero(self):
        if self._unary is None:
            return torch.zeros(self._nvar, self._nlabel, device=self.device)
        return self._unary

    def _out(self, q):
        q = transposed(q)                                   # (nlabels, nvar)
        return q.cpu().numpy() if self._numpy_out else q

    def inference(self, niter):
        """Q (nlabels, nvar) after niter mean-field iterations."""
        return self._out(meanfield(self._unary_or_zero(), self._kernels, int(niter)))

    def startInference(self):
        """(Q, tmp1, tmp2) as pydensecrf returns them; tmp1/tmp2 are unused placeholders."""
        q = self._out(meanfield(self._unary_or_zero(), [], 0))
        empty = np.empty((0, 0), np.float32) if self._numpy_out else torch.empty(0, 0)
        return q, empty, empty

    def stepInference(self, Q, tmp1=None, tmp2=None):
        """One mean-field iteration, written into Q in place."""
        qt = _to_tensor(Q, "Q", ndim=2, device=self.device)
        if tuple(qt.shape) != (self._nlabel, self._nvar):
            raise CRFError(f"Q must be {(self._nlabel, self._nvar)}, got {tuple(qt.shape)}")
        new = meanfield(self._unary_or_zero(), self._kernels, 1, qt.t().contiguous()).t()
        if isinstance(Q, np.ndarray):
            Q[...] = new.cpu().numpy()
        elif isinstance(Q, torch.Tensor):
            Q.copy_(new)
        else:
            torch.from_dlpack(Q).copy_(new)

    def klDivergence(self, Q):
        """densecrf's KL(Q||P) up to log Z: sum Q log Q + U.Q + sum_k Q.pairwise_k(Q)."""
        q = _to_tensor(Q, "Q", ndim=2, device=self.device).t().contiguous().double()
        kl = (q * torch.log(q.clamp(min=1e-20))).sum()
        if self._unary is not None:
            kl = kl + (self._unary.double() * q).sum()
        qf = q.float()
        for k in self._kernels:
            x = qf * k.norm_before[:, None] if k.norm_before.numel() else qf
            m = lattice_filter(x.contiguous(), k.lattice)
            if k.norm_after.numel():
                m = m * k.norm_after[:, None]
            m = m * k.compat if k.compat.dim() == 1 else m @ k.compat.t()
            kl = kl + (q * m.double()).sum()
        return float(kl)


class DenseCRF2D(DenseCRF):
    """CRF over a W x H image, pixel index y*W + x (pydensecrf.densecrf.DenseCRF2D)."""

    def __init__(self, w, h, nlabels, device=None):
        super().__init__(int(w) * int(h), nlabels, device=device)
        self._w, self._h = int(w), int(h)

    def _cpu_features(self, sx, sy, d):
        """(nvar, d) float32 numpy features with [x / sx, y / sy] in the first two columns, the
        same float32 divisions as densecrf, each column and row divided once and broadcast.
        numpy's single thread: on a busy machine each small op on torch's threads waits for a
        descheduled one (the drop-in's set-up took 2x dense_crf's under load)."""
        f = np.empty((self._h, self._w, d), np.float32)
        f[:, :, 0] = np.arange(self._w, dtype=np.float32) / np.float32(sx)
        f[:, :, 1] = (np.arange(self._h, dtype=np.float32) / np.float32(sy))[:, None]
        return f

    def _grid(self, sx, sy):
        """[x / sx, y / sy] as two (nvar,) float32 tensors on the CRF's (non-CPU) device, the
        float32 divisions of _cpu_features."""
        ys, xs = torch.meshgrid(torch.arange(self._h, dtype=torch.float32, device=self.device),
                                torch.arange(self._w, dtype=torch.float32, device=self.device),
                                indexing="ij")
        return [xs.reshape(-1) / torch.full((self._nvar,), sx, device=self.device),
                ys.reshape(-1) / torch.full((self._nvar,), sy, device=self.device)]

    @staticmethod
    def _stds(name, v, n):
        vals = (v,) * n if isinstance(v, Number) else tuple(v)
        if len(vals) != n:
            raise CRFError(f"{name} must be a number or {n} numbers, got {v!r}")
        for s in vals:
            if not float(s) > 0 or float(s) == float("inf"):
                raise CRFError(f"{name} must be > 0 and finite, got {v!r}")
        return [float(np.float32(s)) for s in vals]

    def addPairwiseGaussian(self, sxy, compat, kernel=DIAG_KERNEL,
                            normalization=NORMALIZE_SYMMETRIC):
        sx, sy = self._stds("sxy", sxy, 2)
        # Built (nvar, d) as the lattice takes them: the (d, nvar) of addPairwiseEnergy would
        # cost a transpose.
        if self.device.type == "cpu":
            f = torch.from_numpy(self._cpu_features(sx, sy, 2).reshape(self._nvar, 2))
        else:
            f = torch.stack(self._grid(sx, sy), 1)
        self._add_kernel(f, compat, kernel, normalization)

    def addPairwiseBilateral(self, sxy, srgb, rgbim, compat, kernel=DIAG_KERNEL,
                             normalization=NORMALIZE_SYMMETRIC):
        """rgbim: (H, W, 3) uint8 image (numpy, or a DLPack array)."""
        sx, sy = self._stds("sxy", sxy, 2)
        stds = self._stds("srgb", srgb, 3)
        im = _to_tensor(rgbim, "rgbim", dtype=torch.uint8, device=self.device)
        if im.dim() != 3 or im.shape[0] != self._h or im.shape[1] != self._w:
            raise CRFError(f"Bad shape for pairwise bilateral (Need {(self._h, self._w, 3)}, got "
                           f"{tuple(im.shape)})")
        if im.shape[2] != 3:
            raise CRFError("addPairwiseBilateral only works for RGB images; use "
                           "utils.create_pairwise_bilateral and addPairwiseEnergy for others")
        # Colour divided by a tensor of the stds (not a Python number, as _grid does): an
        # elementwise IEEE division, rounded as densecrf's.
        if self.device.type == "cpu":  # numpy's single thread (see _cpu_features)
            a = self._cpu_features(sx, sy, 5)
            np.divide(im.numpy(), np.array(stds, np.float32), out=a[:, :, 2:],
                      dtype=np.float32)
            f = torch.from_numpy(a.reshape(self._nvar, 5))
        else:
            c = im.reshape(self._nvar, 3).float()
            std = torch.tensor(stds, dtype=torch.float32, device=self.device)
            f = torch.cat([torch.stack(self._grid(sx, sy), 1), c / std], 1)
        self._add_kernel(f, compat, kernel, normalization)
