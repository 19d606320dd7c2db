"""DeepLab's fully connected CRF on torch tensors, batched, CPU or CUDA.

``dense_crf`` is what DeepLab v1's DENSE_CRF layer computes: unary = -log softmax(scores),
Potts kernels (a spatial Gaussian on x/pos_xy_std, y/pos_xy_std and a bilateral one on
x/bi_xy_std, y/bi_xy_std, colour/bi_rgb_std), each filtered with the permutohedral lattice and
normalised per pixel after filtering (densecrf's NORMALIZE_AFTER, the NIPS'11 / v1 semantics),
the pixel's own contribution included (neither densecrf v1 nor v2 removes it), 10 mean-field
iterations.  The softmax uses the exact exp (DeepLab's libDenseCRF used an approximate fast_exp,
so its marginals differ from ours in the last digits).
"""
import torch

from ..errors import CRFError
from ..ops.crf import Kernel, build_lattice, meanfield
from .pairwise import compat_tensor, kernel_norms, normalization_code
from .params import kernel_params
from .tensor_ops import all_finite, transposed
from .trainable import grid_features, meanfield_trainable

def _valid_sizes(data_dim, N, H, W):
    if data_dim is None:
        return [(H, W)] * N
    dd = torch.as_tensor(data_dim).detach().to("cpu")
    if dd.numel() != 2 * N:
        raise CRFError(f"data_dim must hold (height, width) for each of the {N} images, "
                       f"got shape {tuple(dd.shape)}")
    dd = dd.reshape(N, 2)
    if not bool(torch.isfinite(dd.double()).all()):
        raise CRFError("data_dim contains non-finite values")
    sizes = []
    for n in range(N):
        h, w = int(dd[n, 0]), int(dd[n, 1])
        if not (0 <= h <= H and 0 <= w <= W):
            raise CRFError(f"data_dim[{n}] = ({h}, {w}) is outside the {H}x{W} blob")
        sizes.append((h, w))
    return sizes


def dense_crf(scores_or_probs, image=None, pos_w=3.0, pos_xy_std=3.0, bi_w=4.0, bi_xy_std=121.0,
              bi_rgb_std=5.0, max_iter=10, *, data_dim=None, input_type="scores",
              normalization="NORMALIZE_AFTER", clip=1e-8):
    """Mean-field marginals of DeepLab's fully connected CRF.

    scores_or_probs: (N, L, H, W) or (L, H, W) float32 on CPU or CUDA; class scores (logits,
        input_type="scores": unary = -log softmax), probabilities (input_type="probs": unary =
        -log max(p, clip)) or unary energies (input_type="unary").
    image: (N, K, H, W) or (K, H, W), float or uint8, the colour features in the order given (pass
        RGB to match pydensecrf's addPairwiseBilateral); needed when there is a bilateral kernel.
    pos_w, pos_xy_std, bi_w, bi_xy_std, bi_rgb_std: numbers or equal-length sequences (Caffe's
        repeated fields): one Potts kernel per entry.  Stds are in pixels / colour units.
    max_iter: mean-field iterations.
    data_dim: (N, 2) or (N, 1, 1, 2) valid (height, width) per image (DeepLab's data_dim); the CRF
        runs on the top-left region and the output is zero outside it.
    normalization: NORMALIZE_AFTER (DeepLab v1), NORMALIZE_SYMMETRIC (pydensecrf's default),
        NORMALIZE_BEFORE or NO_NORMALIZATION.
    Returns marginals Q with the input's shape, float32.  When scores_or_probs requires grad
    (and grad is enabled) the mean field runs as differentiable iterations of the lattice filter
    (crf/trainable.py; the same values to float rounding) and Q carries its gradient.
    """
    x = scores_or_probs
    if not isinstance(x, torch.Tensor):
        raise CRFError(f"scores_or_probs must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.float32:
        raise CRFError(f"scores_or_probs must be float32, got {x.dtype}")
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise CRFError(f"scores_or_probs must be (N, L, H, W) or (L, H, W), got shape "
                       f"{tuple(scores_or_probs.shape)}")
    N, L, H, W = x.shape
    if L < 2:
        raise CRFError(f"scores_or_probs must have at least 2 labels, got {L}")
    if not all_finite(x):
        raise CRFError("scores_or_probs contains non-finite values (NaN or inf)")
    if input_type not in ("scores", "probs", "unary"):
        raise CRFError(f"input_type must be 'scores', 'probs' or 'unary', got {input_type!r}")
    normalization_code(normalization)
    k = kernel_params(pos_w, pos_xy_std, bi_w, bi_xy_std, bi_rgb_std, max_iter)
    img = None
    if k.bi_w:
        if image is None:
            raise CRFError("image is required for the bilateral kernel (bi_w given)")
        if not isinstance(image, torch.Tensor):
            raise CRFError(f"image must be a torch.Tensor, got {type(image).__name__}")
        img = image.unsqueeze(0) if image.dim() == 3 else image
        if img.dim() != 4 or img.shape[0] != N or tuple(img.shape[2:]) != (H, W) or \
                not 1 <= img.shape[1] <= 14:
            raise CRFError(f"image must be (N, K, H, W) = ({N}, K, {H}, {W}) with 1 <= K <= 14 "
                           f"to match scores_or_probs, got shape {tuple(image.shape)}")
        if img.dtype not in (torch.uint8, torch.float32, torch.float64, torch.float16):
            raise CRFError(f"image must be uint8 or floating point, got {img.dtype}")
        if img.device != x.device:
            raise CRFError(f"image is on {img.device} but scores_or_probs is on {x.device}")
        img = img.to(torch.float32)
        if not all_finite(img):
            raise CRFError("image contains non-finite values (NaN or inf)")
    sizes = _valid_sizes(data_dim, N, H, W)
    return _run(x, img, sizes, k, input_type, normalization, clip, squeeze)


def _run(x, img, sizes, k, input_type, normalization, clip, squeeze):
    N, L, H, W = x.shape
    dev = x.device
    out = torch.zeros_like(x)
    units = []                      # per image: flattened (h*w, L) inputs
    ids = []
    for n, (h, w) in enumerate(sizes):
        if h and w:
            units.append(transposed(x[n, :, :h, :w].reshape(L, h * w)))
            ids.append(torch.full((h * w,), n, dtype=torch.int32, device=dev))
    if not units:
        return out.squeeze(0) if squeeze else out
    inp = units[0] if len(units) == 1 else torch.cat(units)
    image_ids = torch.cat(ids)
    if input_type == "scores":
        unary = -torch.log_softmax(inp, dim=1)
    elif input_type == "probs":
        unary = -torch.log(inp.clamp(min=clip, max=1.0))
    else:
        unary = inp
    unary = unary.contiguous()

    def features(std_xy, std_rgb=None):
        parts = []
        for n, (h, w) in enumerate(sizes):
            if not (h and w):
                continue
            f = grid_features(h, w, std_xy, dev)
            if std_rgb is not None:
                c = img[n, :, :h, :w].reshape(img.shape[1], h * w).t()
                f = torch.cat([f, c / torch.full_like(c, std_rgb)], 1)
            parts.append(f)
        return torch.cat(parts).contiguous()

    kernels = []
    specs = [(w, features(s)) for w, s in zip(k.pos_w, k.pos_xy_std)] + \
            [(w, features(s, r)) for w, s, r in zip(k.bi_w, k.bi_xy_std, k.bi_rgb_std)]
    for w, f in specs:
        lat = build_lattice(f, image_ids)
        before, after = kernel_norms(lat, normalization)
        kernels.append(Kernel(lat, before, after, compat_tensor(w, L, dev)))
    if unary.requires_grad and torch.is_grad_enabled():
        q = meanfield_trainable(unary, kernels, k.max_iter)
    else:
        q = meanfield(unary, kernels, k.max_iter)
    start = 0
    for n, (h, w) in enumerate(sizes):
        if h and w:
            out[n, :, :h, :w] = transposed(q[start:start + h * w]).reshape(L, h, w)
            start += h * w
    return out.squeeze(0) if squeeze else out
