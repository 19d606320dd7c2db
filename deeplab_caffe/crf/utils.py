"""Drop-in for ``pydensecrf.utils``: unaries from labels or softmax outputs, and pairwise
feature arrays for ``DenseCRF.addPairwiseEnergy``.  numpy in, numpy out (float32, C-order)."""
from numbers import Number

import numpy as np

from ..errors import CRFError


def unary_from_labels(labels, n_labels, gt_prob, zero_unsure=True):
    """(n_labels, labels.size) float32 energies from a label map that is right with gt_prob.

    zero_unsure: label 0 means "unknown" (uniform), and labels 1..n_labels map to rows 0..n-1.
    """
    if not 0 < gt_prob < 1:
        raise CRFError(f"gt_prob must be in (0, 1), got {gt_prob}")
    if int(n_labels) < 2:
        raise CRFError(f"n_labels must be >= 2, got {n_labels}")
    labels = np.asarray(labels).reshape(-1)
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise CRFError(f"labels must be integers, got {labels.dtype}")
    rows = labels - 1 if zero_unsure else labels
    known = labels != 0 if zero_unsure else np.ones(labels.shape, bool)
    if np.any(rows[known] < 0) or np.any(rows[known] >= n_labels):
        lo, hi = (1, n_labels) if zero_unsure else (0, n_labels - 1)
        raise CRFError(f"labels must lie in {lo}..{hi}{' (0 = unsure)' if zero_unsure else ''}, "
                       f"got values in [{labels.min()}, {labels.max()}]")
    other = -np.log((1.0 - gt_prob) / (n_labels - 1))
    U = np.full((n_labels, labels.size), other, dtype=np.float32)
    cols = np.nonzero(known)[0]
    U[rows[known], cols] = -np.log(gt_prob)
    if zero_unsure:
        U[:, ~known] = -np.log(1.0 / n_labels)
    return U


def unary_from_softmax(sm, scale=None, clip=1e-5):
    """-log(probabilities) as (n_classes, prod(other dims)) float32; sm.shape[0] is the classes.

    scale: blend with the uniform distribution so an output of 1 means probability `scale`.
    clip: lower bound on the probabilities (log 0 is infinite).
    """
    sm = np.asarray(sm)
    n = sm.shape[0]
    if scale is not None:
        if not 0 < scale <= 1:
            raise CRFError(f"scale must be in (0, 1], got {scale}")
        sm = scale * sm + (1 - scale) * (np.ones(sm.shape) / n)
    if clip is not None:
        sm = np.clip(sm, clip, 1.0)
    return -np.log(sm).reshape([n, -1]).astype(np.float32)


def _mesh(shape, sdims):
    if len(sdims) != len(shape):
        raise CRFError(f"sdims must have one std per dimension ({len(shape)}), got {sdims}")
    for s in sdims:
        if not s > 0:
            raise CRFError(f"sdims must be > 0, got {sdims}")
    mesh = np.array(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), dtype=np.float32)
    for i, s in enumerate(sdims):
        mesh[i] /= np.float32(s)
    return mesh


def create_pairwise_gaussian(sdims, shape):
    """(len(shape), prod(shape)) float32 features: each coordinate divided by its std (sdims)."""
    return _mesh(tuple(shape), tuple(sdims)).reshape([len(sdims), -1])


def create_pairwise_bilateral(sdims, schan, img, chdim=-1):
    """(len(sdims) + channels, pixels) float32 features: coordinates / sdims then channels / schan.

    chdim: axis of img holding the channels, or -1 when img has no channel axis.
    """
    img = np.asarray(img)
    feat = img[np.newaxis].astype(np.float32) if chdim == -1 else \
        np.moveaxis(img, chdim, 0).astype(np.float32)
    schan_l = [schan] * feat.shape[0] if isinstance(schan, Number) else list(schan)
    if len(schan_l) < feat.shape[0] and not isinstance(schan, Number):
        raise CRFError(f"schan needs one std per channel ({feat.shape[0]}), got {schan}")
    for i in range(feat.shape[0]):
        if not schan_l[i] > 0:
            raise CRFError(f"schan must be > 0, got {schan}")
        feat[i] /= np.float32(schan_l[i])
    mesh = _mesh(feat.shape[1:], tuple(sdims))
    return np.concatenate([mesh, feat]).reshape([len(sdims) + feat.shape[0], -1])
