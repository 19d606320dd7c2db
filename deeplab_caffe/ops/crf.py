"""Python side of the permutohedral-lattice and dense-CRF ops (``torch.ops.deeplab_caffe``).

A lattice is built once per set of features and kept as plain tensors (a ``Lattice`` tuple), so
the same object serves every mean-field iteration and works on CPU and CUDA alike:

  offsets        (P, d+1) int32    lattice vertex of each of the point's simplex corners
  weights        (P, d+1) float32  barycentric weights
  blur_neighbors (d+1, M, 2) int32 neighbours of each vertex along each axis (-1 = absent)
  splat_ptr      (M+1,) int32      CSR rows of the (point, corner) entries per vertex
  splat_src      (P*(d+1),) int32  entry indices p*(d+1)+j, ascending within a vertex

Errors from the kernels' argument checks come back as ``CRFError``.
"""
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch

from .. import _C  # noqa: F401  (registers the ops)
from ..errors import CRFError

_ops = torch.ops.deeplab_caffe


class Lattice(NamedTuple):
    offsets: torch.Tensor
    weights: torch.Tensor
    blur_neighbors: torch.Tensor
    splat_ptr: torch.Tensor
    splat_src: torch.Tensor

    @property
    def num_points(self):
        return self.offsets.shape[0]

    @property
    def num_vertices(self):
        return self.blur_neighbors.shape[1]

    @property
    def dim(self):
        return self.offsets.shape[1] - 1


class Kernel(NamedTuple):
    """One pairwise term: its lattice, per-point normalisation scales and label compatibility.

    norm_before / norm_after: (P,) float32 or an empty tensor for none.
    compat: (L,) diagonal or (L, L) matrix, in densecrf's sign convention (Potts w is -w).
    """
    lattice: Lattice
    norm_before: torch.Tensor
    norm_after: torch.Tensor
    compat: torch.Tensor


def _call(op, *args):
    try:
        return op(*args)
    except CRFError:
        raise
    except (ValueError, TypeError) as e:
        raise CRFError(str(e).split("\nException raised from")[0]) from None


def build_lattice(features: torch.Tensor, image_ids: Optional[torch.Tensor] = None,
                  pad_to: int = 1) -> Lattice:
    """Lattice for features (P, d) float32 (already divided by their stds, 1 <= d <= 16).

    image_ids (P,) int: points of different images never share a vertex, so one lattice can hold
    a whole batch.

    pad_to: densecrf v2 (pydensecrf) places its points 4 at a time and fills the last block of
    each lattice with points at feature 0, whose simplex corners join the lattice: they splat
    and slice nothing, but where they add vertices next to real ones (a point near the origin
    of the feature space, as with large colour stds) the blur passes through them.  pad_to=4
    reproduces that; 1 (the default) builds the lattice of the points alone.
    """
    if not isinstance(features, torch.Tensor):
        raise CRFError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.dtype != torch.float32:
        raise CRFError(f"features must be float32, got {features.dtype}")
    if features.dim() != 2 or not 1 <= features.shape[1] <= 16:
        raise CRFError(f"features must be (P, d) with 1 <= d <= 16, got shape "
                       f"{tuple(features.shape)}")
    if isinstance(pad_to, bool) or not isinstance(pad_to, int) or pad_to < 1:
        raise CRFError(f"pad_to must be an int >= 1, got {pad_to!r}")
    if pad_to > 1:
        return _padded_lattice(features, image_ids, pad_to)
    # Non-finite or too large features are caught while the kernel embeds them (one pass less).
    return Lattice(*_call(_ops.permutohedral_build, features, image_ids))


def _padded_lattice(features, image_ids, pad_to):
    """build_lattice(pad_to > 1): the lattice of the points plus each image's padding points at
    feature 0, appended after all points, then cut back to the real points.  The padding
    points' vertices (numbered last, as first occurrence numbers them) keep their place in the
    blur; no point splats into or slices from them."""
    P, d = features.shape
    dev = features.device
    if image_ids is None:
        groups, counts = [None], [P]
    else:
        if not isinstance(image_ids, torch.Tensor) or image_ids.shape != (P,):
            raise CRFError(f"image_ids must be a (P,) tensor with P = {P}")
        uniq, cnt = torch.unique(image_ids, return_counts=True)
        groups, counts = uniq.tolist(), cnt.tolist()
    pad_ids = []
    for g, n in zip(groups, counts):
        pad_ids += [g] * ((-n) % pad_to)
    if not pad_ids:
        return build_lattice(features, image_ids)
    # On the CPU in numpy's single thread, as kernel_norms: small torch ops on torch's threads
    # wait for a descheduled one on a busy machine (the padded build took 2x the plain one).
    zeros = features.new_zeros(len(pad_ids), d)
    feats = torch.cat([features, zeros]) if dev.type != "cpu" else \
        torch.from_numpy(np.concatenate([features.numpy(), zeros.numpy()]))
    ids = None if image_ids is None else torch.cat(
        [image_ids, torch.tensor(pad_ids, dtype=image_ids.dtype, device=dev)])
    full = build_lattice(feats.contiguous(), ids)
    # The padding points' few entries end their vertices' splat lists (entry numbers ascend
    # within a list): cut those positions out of splat_src and their counts out of splat_ptr,
    # leaving the real points' lists as they are (a mask over every entry cost 10-20 ms).
    full_ptr = full.splat_ptr.cpu().numpy().astype(np.int64)
    vs, cs = np.unique(full.offsets[P:].cpu().numpy().reshape(-1), return_counts=True)
    cut = np.zeros(full_ptr.shape[0], np.int64)
    cut[vs + 1] = cs
    ptr = (full_ptr - np.cumsum(cut)).astype(np.int32)
    drop = [i for e, c in zip(full_ptr[vs + 1].tolist(), cs.tolist()) for i in range(e - c, e)]
    src = np.delete(full.splat_src.cpu().numpy(), drop)
    return Lattice(full.offsets[:P].contiguous(), full.weights[:P].contiguous(),
                   full.blur_neighbors, torch.from_numpy(ptr).to(dev),
                   torch.from_numpy(src).to(dev))


def lattice_filter(values: torch.Tensor, lattice: Lattice, reverse: bool = False) -> torch.Tensor:
    """densecrf's Permutohedral::compute: values (P, C) float32 -> (P, C).  float64 values go to
    the float64 twin (a reference path for double-precision gradient checks)."""
    if isinstance(values, torch.Tensor) and values.dtype == torch.float64:
        return _call(_ops.permutohedral_filter_f64, values, *lattice, bool(reverse))
    return _call(_ops.permutohedral_filter, values, *lattice, bool(reverse))


def meanfield(unary: torch.Tensor, kernels: Sequence[Kernel], max_iter: int,
              q_init: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean-field Q (P, L) from unary energies (P, L) float32 and the pairwise kernels."""
    ks = list(kernels)
    return _call(_ops.dense_crf_meanfield, unary, q_init,
                 [k.lattice.offsets for k in ks], [k.lattice.weights for k in ks],
                 [k.lattice.blur_neighbors for k in ks], [k.lattice.splat_ptr for k in ks],
                 [k.lattice.splat_src for k in ks], [k.norm_before for k in ks],
                 [k.norm_after for k in ks], [k.compat for k in ks], int(max_iter))


def meanfield_backward(grad_logits: torch.Tensor, q_history: torch.Tensor,
                       kernels: Sequence[Kernel]):
    """The mean field's backward in one op (csrc/permutohedral/meanfield_backward.h): from
    dL/d(last logits) (P, L) and the Q each iteration started from (T, P, L), returns
    (dL/dQ_0, dL/dunary through the iterations, [dL/dcompat_k]).  None where the backend has no
    kernel for it (the caller then runs the same maths with lattice_filter)."""
    ks = list(kernels)
    try:
        return _call(_ops.dense_crf_meanfield_backward, grad_logits, q_history,
                     [k.lattice.offsets for k in ks], [k.lattice.weights for k in ks],
                     [k.lattice.blur_neighbors for k in ks], [k.lattice.splat_ptr for k in ks],
                     [k.lattice.splat_src for k in ks], [k.norm_before for k in ks],
                     [k.norm_after for k in ks], [k.compat for k in ks])
    except (NotImplementedError, AttributeError):
        return None


def _filter_fake(values, offsets, weights, blur_neighbors, splat_ptr, splat_src, reverse):
    return torch.empty_like(values)


for _op in ("permutohedral_filter", "permutohedral_filter_f64"):
    torch.library.register_fake(f"deeplab_caffe::{_op}")(_filter_fake)


@torch.library.register_fake("deeplab_caffe::dense_crf_meanfield_backward")
def _meanfield_backward_fake(grad_logits, q_history, offsets, weights, blur_neighbors, splat_ptr,
                             splat_src, norm_before, norm_after, compat):
    return (torch.empty_like(grad_logits), torch.empty_like(grad_logits),
            [torch.empty_like(c) for c in compat])


@torch.library.register_fake("deeplab_caffe::dense_crf_meanfield")
def _meanfield_fake(unary, q_init, offsets, weights, blur_neighbors, splat_ptr, splat_src,
                    norm_before, norm_after, compat, max_iter):
    return torch.empty_like(unary)


# The filter's adjoint is the filter with the blur order reversed: each axis's blur [1 2 1]/2 is
# a symmetric matrix (u is v's first neighbour along an axis exactly when v is u's second),
# splat and slice are each other's transposes with the same barycentric weights, and the slice's
# constant scale is a scalar; so (alpha S^T B_d..B_0 S)^T = alpha S^T B_0..B_d S, the same
# kernels on the same lattice, CPU, CUDA and emulated alike.  The lattice is a constant (its
# features are not differentiated, as in CRF-RNN).
def _filter_setup_context(ctx, inputs, output):
    ctx.lattice = inputs[1:6]
    ctx.reverse = inputs[6]


def _filter_backward(op):
    def backward(ctx, grad):
        return (op(grad.contiguous(), *ctx.lattice, not ctx.reverse),
                None, None, None, None, None, None)
    return backward


def register_filter_autograd(namespace):
    """Backward of ``<namespace>::permutohedral_filter`` (and its float64 twin) by its adjoint:
    the same namespace's op, so the emulated build's gradient runs the emulated kernels."""
    for name in ("permutohedral_filter", "permutohedral_filter_f64"):
        op = getattr(getattr(torch.ops, namespace), name)
        torch.library.register_autograd(f"{namespace}::{name}", _filter_backward(op),
                                        setup_context=_filter_setup_context)


register_filter_autograd("deeplab_caffe")


# The lattice build and the fused mean-field op have no backward: without an autograd
# registration PyTorch would backpropagate through them as constants with only a warning.  The
# differentiable mean field is deeplab_caffe.crf.trainable (its backward: meanfield_backward).
def _no_backward(op):
    def backward(ctx, *grads):
        raise CRFError(f"deeplab_caffe::{op} has no backward: differentiate the mean field with "
                       "deeplab_caffe.crf.trainable (MeanFieldCRF, meanfield_logits) and keep "
                       "the lattice features constant (detach them)")
    return backward


for _op in ("permutohedral_build", "dense_crf_meanfield"):
    torch.library.register_autograd(f"deeplab_caffe::{_op}", _no_backward(_op))
