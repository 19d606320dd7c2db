"""The differentiable mean field (CRF-RNN, Zheng et al. ICCV 2015) on the permutohedral lattice.

The gradient comes from the filter's adjoint (the same lattice, the blur order reversed,
ops/crf.py): per iteration, one adjoint filtering per kernel of na_k * dL/da_t gives the
gradients w.r.t. the unary, the iteration's Q and every kernel's compatibility (any tensor: a
learnable weight, C @ W as CRF-RNN composes them, ...) -- the maths is in
csrc/permutohedral/meanfield_backward.h, run by the op ``dense_crf_meanfield_backward`` (CPU,
CUDA and the emulated build, float32) and by the same steps written with ``lattice_filter``
where the op does not apply (float64).  The lattice features and the normalisation scales are
constants, as in CRF-RNN.  The forward's iterations are the fused op's, one call each, the last
one's logits by the filter.

Memory: the backward needs only the Q each iteration started from -- not the messages -- so by
default the forward keeps one (P, L) tensor per iteration (a third of what autograd over the
iterations kept with two kernels).  ``checkpoint=True`` keeps one Q every ceil(sqrt(T))
iterations and recomputes each segment's Q in the backward: about 2 sqrt(T) tensors, for about
one more forward's time.
"""
import math
from typing import Optional, Sequence

import torch
from torch.autograd.function import once_differentiable

from ..errors import CRFError
from ..ops.crf import (Kernel, build_lattice, lattice_filter, meanfield, meanfield_backward)


def _message(q, kernel):
    """One kernel's pairwise term (P, L): compat . (norm_after * K(norm_before * Q))."""
    v = q * kernel.norm_before[:, None] if kernel.norm_before.numel() else q
    m = lattice_filter(v.contiguous(), kernel.lattice)
    if kernel.norm_after.numel():
        m = m * kernel.norm_after[:, None]
    c = kernel.compat
    return m * c if c.dim() == 1 else m @ c.t()


def _iteration(q, unary, kernels):
    a = -unary
    for k in kernels:
        a = a - _message(q, k)
    return a


def _fusable(x, kernels):
    """Whether the fused ops (float32 only: the forward's ``meanfield``, the backward's
    ``meanfield_backward``) can run iterations on ``x`` (the unary or the gradient)."""
    return bool(kernels) and x.dtype == torch.float32 and all(
        k.compat.dtype == torch.float32 for k in kernels)


def _history(q, unary, kernels, n):
    """[q, Q_1, ..., Q_{n-1}]: the Q each of n iterations from q starts from, by the fused op
    where it can (the same values to float rounding), else by the filter."""
    qs = [q]
    for _ in range(n - 1):
        if _fusable(unary, kernels):
            q = meanfield(unary, kernels, 1, q_init=q.contiguous())
        else:
            q = torch.softmax(_iteration(q, unary, kernels), 1)
        qs.append(q)
    return qs


def _softmax_backward(q, gq):
    return q * (gq - (gq * q).sum(1, keepdim=True))


def _backward_steps(g, qs, kernels):
    """dense_crf_meanfield_backward's maths with lattice_filter (meanfield_backward.h): from
    g = dL/d(last logits) and the Q each iteration started from, (dL/dQ_0, dL/dunary,
    [dL/dcompat_k])."""
    gu = torch.zeros_like(g)
    gcs = [torch.zeros_like(k.compat) for k in kernels]
    gq = torch.zeros_like(g)
    for t in range(len(qs) - 1, -1, -1):
        q = qs[t]
        gu = gu - g
        gq = torch.zeros_like(g)
        for i, k in enumerate(kernels):
            nb, na = k.norm_before, k.norm_after
            x = g * na[:, None] if na.numel() else g
            r = lattice_filter(x.contiguous(), k.lattice, reverse=True)
            qb = q * nb[:, None] if nb.numel() else q
            if k.compat.dim() == 1:
                gcs[i] = gcs[i] - (r * qb).sum(0)
                rc = r * k.compat
            else:
                gcs[i] = gcs[i] - r.t() @ qb
                rc = r @ k.compat
            gq = gq - (nb[:, None] * rc if nb.numel() else rc)
        if t > 0:
            g = _softmax_backward(q, gq)
    return gq, gu, gcs


def _backward_block(g, qs, kernels):
    """(dL/dQ_0, dL/dunary, [dL/dcompat_k]) of the iterations starting from qs: the op where the
    backend has it, else the same steps with the filter."""
    if _fusable(g, kernels):
        out = meanfield_backward(g, qs, kernels)
        if out is not None:
            return out
    return _backward_steps(g, qs, kernels)


class MeanFieldFunction(torch.autograd.Function):
    """meanfield_logits for max_iter >= 1 as one autograd node (see the module's docstring);
    ``lattices``: (lattice, norm_before, norm_after) per kernel, constants."""

    @staticmethod
    def forward(ctx, unary, q_init, logits_init, max_iter, checkpoint, lattices, *compats):
        kernels = [Kernel(lat, nb, na, c.detach().contiguous())
                   for (lat, nb, na), c in zip(lattices, compats)]
        unary = unary.detach().contiguous()
        q = q_init if q_init is not None else torch.softmax(
            -unary if logits_init is None else logits_init, 1)
        qs = _history(q.detach().contiguous(), unary, kernels, max_iter)
        a = _iteration(qs[-1], unary, kernels)
        ctx.seg = math.ceil(math.sqrt(max_iter)) if checkpoint else max_iter
        ctx.kernels, ctx.max_iter, ctx.checkpoint = kernels, max_iter, checkpoint
        ctx.init = "q" if q_init is not None else "logits" if logits_init is not None else "unary"
        ctx.save_for_backward(unary, *(qs[::ctx.seg] if checkpoint else qs))
        return a

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        unary, *saved = ctx.saved_tensors
        kernels, seg, T = ctx.kernels, ctx.seg, ctx.max_iter
        g, gu, gcs = grad.contiguous(), 0, None
        for i in range((T + seg - 1) // seg - 1, -1, -1):    # segments, last first
            qs = _history(saved[i], unary, kernels, min(seg, T - i * seg)) \
                if ctx.checkpoint else saved
            gq, gu_i, gc_i = _backward_block(g, qs, kernels)
            gu = gu + gu_i
            gcs = list(gc_i) if gcs is None else [a + b for a, b in zip(gcs, gc_i)]
            if i > 0:
                g = _softmax_backward(qs[0], gq).contiguous()
        g_qinit = g_logits = None
        if ctx.init == "q":
            g_qinit = gq
        elif ctx.init == "logits":
            g_logits = _softmax_backward(saved[0], gq)
        else:
            gu = gu - _softmax_backward(saved[0], gq)
        return (gu, g_qinit, g_logits, None, None, None, *gcs)


def meanfield_logits(unary: torch.Tensor, kernels: Sequence[Kernel], max_iter: int,
                     q_init: Optional[torch.Tensor] = None, logits_init=None,
                     checkpoint: bool = False) -> torch.Tensor:
    """The mean field's last logits a (P, L): Q_{t+1} = softmax(a_t), a_t = -unary -
    sum_k compat_k . (norm_after_k * K_k(norm_before_k * Q_t)); Q_0 = q_init, or
    softmax(logits_init), or softmax(-unary).  softmax(result) is what the op ``meanfield``
    returns (to float rounding: the fused op's update rounds in another order).  max_iter = 0
    returns the initial logits (-unary or logits_init).  Differentiable w.r.t. unary, q_init,
    logits_init and every kernel's compat."""
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise CRFError(f"max_iter must be an int >= 0, got {max_iter!r}")
    ks = list(kernels)
    if max_iter == 0:
        return -unary if logits_init is None else logits_init
    return MeanFieldFunction.apply(unary, q_init, logits_init, max_iter, bool(checkpoint),
                                   tuple((k.lattice, k.norm_before, k.norm_after) for k in ks),
                                   *[k.compat for k in ks])


def meanfield_trainable(unary, kernels, max_iter, q_init=None, checkpoint=False):
    """Marginals Q (P, L) like ``ops.crf.meanfield``, differentiable."""
    return torch.softmax(meanfield_logits(unary, kernels, max_iter, q_init=q_init,
                                          checkpoint=checkpoint), 1)


def grid_features(h, w, std, device):
    """(h*w, 2) float32: x/std, y/std per pixel, row-major (pixel = y*w + x), divided in float32
    like densecrf and CRF-RNN (a tensor divisor, so no reciprocal shortcut changes the
    rounding)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device),
                            torch.arange(w, dtype=torch.float32, device=device), indexing="ij")
    xy = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)
    return xy / torch.full_like(xy, std)


def crfrnn_lattices(image, theta_alpha, theta_beta, theta_gamma):
    """CRF-RNN's two lattices over a batch (one lattice per kind, images kept apart by id) and
    their NORMALIZE_AFTER scales 1/(K(1) + 1e-20) in float32 (as multi_stage_meanfield.cpp):
    spatial on (x, y)/theta_gamma, bilateral on (x, y)/theta_alpha and the image's channels in
    blob order / theta_beta.  image (N, C, H, W) float; returns [(lattice, norm), (lattice,
    norm)]."""
    N, C, H, W = image.shape
    dev = image.device
    ids = torch.arange(N, dtype=torch.int32, device=dev).repeat_interleave(H * W)
    xy_g = grid_features(H, W, theta_gamma, dev).repeat(N, 1)
    xy_a = grid_features(H, W, theta_alpha, dev).repeat(N, 1)
    rgb = image.detach().float().permute(0, 2, 3, 1).reshape(N * H * W, C)
    rgb = rgb / torch.full_like(rgb, theta_beta)
    out = []
    for f in (xy_g, torch.cat([xy_a, rgb], 1)):
        lat = build_lattice(f.contiguous(), ids)
        with torch.no_grad():
            ones = torch.ones(lat.num_points, 1, dtype=torch.float32, device=dev)
            norm = 1.0 / (lattice_filter(ones, lat)[:, 0] + 1e-20)
        out.append((lat, norm))
    return out


def crfrnn_forward(unary, q0, image, spatial_weights, bilateral_weights, compat, num_iterations,
                   theta_alpha, theta_beta, theta_gamma, checkpoint=False):
    """CRF-RNN's MultiStageMeanfield forward, differentiable w.r.t. unary, q0 and the three
    (L, L) matrices: per iteration, Q = softmax(previous), message = W_s (norm_s K_s Q) +
    W_b (norm_b K_b Q), out = unary - C message; previous starts at q0.  unary, q0 (N, L, H, W)
    scores (not energies), image (N, C, H, W).  Returns the last out (N, L, H, W), unnormalised.
    """
    N, L, H, W = unary.shape
    empty = torch.empty(0, dtype=torch.float32, device=unary.device)
    (lat_s, norm_s), (lat_b, norm_b) = crfrnn_lattices(image, theta_alpha, theta_beta,
                                                       theta_gamma)
    # out = unary - C (W_s m_s + W_b m_b): in energies (-unary) each kernel's compatibility is
    # C @ W_k, applied as m @ (C W_k)^T.
    kernels = [Kernel(lat_s, empty, norm_s, compat @ spatial_weights),
               Kernel(lat_b, empty, norm_b, compat @ bilateral_weights)]

    def flat(x):
        return x.permute(0, 2, 3, 1).reshape(N * H * W, L)
    a = meanfield_logits(-flat(unary), kernels, num_iterations, logits_init=flat(q0),
                         checkpoint=checkpoint)
    return a.reshape(N, H, W, L).permute(0, 3, 1, 2)


class MeanFieldCRF(torch.nn.Module):
    """CRF-RNN as a module: learnable spatial and bilateral kernel weights and the compatibility
    matrix, each (L, L) (initialised as CRF-RNN: diagonal weights, Potts compatibility -I).

    forward(unary, image, q0=None) -> (N, L, H, W) logits after ``num_iterations`` mean-field
    iterations (q0 defaults to unary, as CRF-RNN's Split feeds it).
    """

    def __init__(self, num_labels, num_iterations=5, theta_alpha=160.0, theta_beta=3.0,
                 theta_gamma=3.0, spatial_weight=3.0, bilateral_weight=5.0, checkpoint=False):
        super().__init__()
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise CRFError(f"num_labels must be an int >= 2, got {num_labels!r}")
        for name, v in (("theta_alpha", theta_alpha), ("theta_beta", theta_beta),
                        ("theta_gamma", theta_gamma)):
            if not float(v) > 0 or float(v) == float("inf"):
                raise CRFError(f"{name} must be > 0 and finite, got {v}")
        eye = torch.eye(num_labels)
        self.spatial_weights = torch.nn.Parameter(eye * float(spatial_weight))
        self.bilateral_weights = torch.nn.Parameter(eye * float(bilateral_weight))
        self.compatibility = torch.nn.Parameter(-eye)
        self.num_iterations = int(num_iterations)
        self.thetas = (float(theta_alpha), float(theta_beta), float(theta_gamma))
        self.checkpoint = checkpoint

    def forward(self, unary, image, q0=None):
        return crfrnn_forward(unary, unary if q0 is None else q0, image, self.spatial_weights,
                              self.bilateral_weights, self.compatibility, self.num_iterations,
                              *self.thetas, checkpoint=self.checkpoint)
