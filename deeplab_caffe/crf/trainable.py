"""The differentiable mean field (CRF-RNN, Zheng et al. ICCV 2015) on the permutohedral lattice.

Each iteration is written with the lattice filter op, whose backward is its adjoint (the same
kernels on the same lattice, ops/crf.py), so autograd gives the exact gradient of the iterations
as computed, w.r.t. the unary, the initial marginals and every kernel's compatibility (any
tensor: a learnable weight, C @ W as CRF-RNN composes them, ...).  The lattice features are
constants, as in CRF-RNN.

Memory: by default each iteration keeps what its backward needs, Q_t and every kernel's message
(K+1 tensors of P x L per iteration; the filter's adjoint needs nothing saved): the backward
then costs about one forward.  ``checkpoint=True`` keeps only Q_t per iteration and recomputes
the messages in the backward (torch.utils.checkpoint), for one more forward's time.
"""
from typing import Optional, Sequence

import torch
import torch.utils.checkpoint

from ..errors import CRFError
from ..ops.crf import Kernel, build_lattice, lattice_filter


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


def meanfield_logits(unary: torch.Tensor, kernels: Sequence[Kernel], max_iter: int,
                     q_init: Optional[torch.Tensor] = None, logits_init=None,
                     checkpoint: bool = False) -> torch.Tensor:
    """The mean field's last logits a (P, L): Q_{t+1} = softmax(a_t), a_t = -unary -
    sum_k compat_k . (norm_after_k * K_k(norm_before_k * Q_t)); Q_0 = q_init, or
    softmax(logits_init), or softmax(-unary).  softmax(result) is what the op ``meanfield``
    returns (to float rounding: the fused op's update rounds in another order).  max_iter = 0
    returns the initial logits (-unary or logits_init)."""
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise CRFError(f"max_iter must be an int >= 0, got {max_iter!r}")
    ks = list(kernels)
    a = -unary if logits_init is None else logits_init
    q = q_init if q_init is not None else torch.softmax(a, 1)
    for _ in range(max_iter):
        if checkpoint and torch.is_grad_enabled():
            a = torch.utils.checkpoint.checkpoint(_iteration, q, unary, ks, use_reentrant=False)
        else:
            a = _iteration(q, unary, ks)
        q = torch.softmax(a, 1)
    return a


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
