"""The cases of the atrous benchmark: DeepLab v1's convolution layer shapes and one timed,
checked run of ours against the reference on one of them."""
import zlib

import torch
import torch.nn.functional as F

from ..ops import conv2d_hole
from .timing import peak_extra_mb, time_call

# name: (C_in, C_out, kernel, pad, hole, spatial at 513, spatial at 321).  The /8 layers use 41 at
# 321, DeepLab fc6 included (its own nets give 39-42 there depending on pool4's pad).
LAYERS = {
    "conv1_2": (64, 64, 3, 1, 1, 513, 321),
    "conv2_2": (128, 128, 3, 1, 1, 257, 161),
    "conv3_3": (256, 256, 3, 1, 1, 129, 81),
    "conv4_3": (512, 512, 3, 1, 1, 65, 41),
    "conv5_3": (512, 512, 3, 2, 2, 65, 41),
    "fc6_largefov": (512, 1024, 3, 12, 12, 65, 41),
    "fc6_deeplab": (512, 4096, 4, 6, 4, 67, 41),
    "fc7": (1024, 1024, 1, 0, 1, 65, 41),
}

INPUTS = {513: 1, 321: 10}            # input size -> batch N

TOLERANCE = {"fp32": 1e-3, "tf32": 2e-2}  # on err (relative to the reference's max |value|)

def cases(quick, shape_filter):
    """[(layer, input, N, C_in, C_out, k, pad, hole, H)]; --quick shrinks channels by 8, spatial
    by 4 and N to 1/2 so the whole set runs in seconds on two CPU cores."""
    wanted = None if not shape_filter else [s.strip() for s in shape_filter.split(",") if s.strip()]
    out = []
    for inp, n in INPUTS.items():
        for name, (cin, cout, k, pad, hole, h513, h321) in LAYERS.items():
            if wanted is not None and name not in wanted and f"{name}@{inp}" not in wanted:
                continue
            h = h513 if inp == 513 else h321
            if quick:
                cin, cout, h, n_ = cin // 8, cout // 8, (h - 1) // 4 + 1, min(n, 2)
            else:
                n_ = n
            out.append((name, inp, n_, cin, cout, k, pad, hole, h))
    if wanted is not None:
        known = set(LAYERS) | {f"{n}@{i}" for n in LAYERS for i in INPUTS}
        bad = [s for s in wanted if s not in known]
        if bad:
            raise ValueError(f"--shapes: unknown {bad}; choose from {sorted(LAYERS)} "
                             f"(optionally @513 or @321)")
    return out

def set_precision(precision):
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32

def make_call(impl, mode, x, w, b, pad, hole):
    """A no-argument function running one forward (or forward+backward) of impl; returns the
    output and, for fwdbwd, the gradients (x, weight, bias)."""
    if impl == "ref":
        def conv(x_, w_, b_):
            return F.conv2d(x_, w_, b_, padding=pad, dilation=hole)
    else:
        def conv(x_, w_, b_):
            return conv2d_hole(x_, w_, b_, pad=pad, hole=hole)
    if mode == "fwd":
        def call():
            with torch.no_grad():
                return (conv(x, w, b),)
        return call
    xg, wg, bg = (t.detach().requires_grad_(True) for t in (x, w, b))
    gy = None

    def call():
        nonlocal gy
        y = conv(xg, wg, bg)
        if gy is None:  # a fixed random upstream gradient, shaped by the first call
            gy = torch.randn(y.shape, generator=torch.Generator(y.device).manual_seed(7),
                             device=y.device, dtype=y.dtype)
        return (y.detach(),) + torch.autograd.grad(y, (xg, wg, bg), gy)
    return call

def rel_err(ours, ref):
    worst = 0.0
    for a, e in zip(ours, ref):
        scale = float(e.abs().max()) if e.numel() else 0.0
        diff = float((a.double() - e.double()).abs().max()) if e.numel() else 0.0
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst

def make_inputs(case, device):
    """x (N, C_in, H, H), weight (C_out, C_in, k, k) scaled to keep outputs O(1), bias (C_out,);
    drawn on the device (fast for the large shapes), seeded by the layer."""
    name, inp, n, cin, cout, k, pad, hole, h = case
    g = torch.Generator(device).manual_seed(zlib.crc32(f"{name}@{inp}".encode()))
    x = torch.randn(n, cin, h, h, generator=g, device=device)
    w = torch.randn(cout, cin, k, k, generator=g, device=device) / (cin * k * k) ** 0.5
    return x, w, torch.randn(cout, generator=g, device=device)

def run_case(case, inputs, mode, precision, device, warmup, repeat):
    name, inp, n, cin, cout, k, pad, hole, h = case
    x, w, b = inputs
    set_precision(precision)
    row = dict(layer=name, input=inp, n=n, c_in=cin, c_out=cout, kernel=k, pad=pad, hole=hole,
               h=h, w=h, mode=mode, precision=precision)
    try:
        ref, ours = (make_call(impl, mode, x, w, b, pad, hole) for impl in ("ref", "ours"))
        row["ref_ms"], row["ref_ms_min"] = time_call(ref, device, warmup, repeat)
        row["ours_ms"], row["ours_ms_min"] = time_call(ours, device, warmup, repeat)
        key = "ms" if device == "cuda" else "ms_min"  # CUDA: mean; CPU: best of R
        row["ratio"] = row[f"ref_{key}"] / row[f"ours_{key}"]
        row["err"] = rel_err(ours(), ref())
        row["ok"] = row["err"] <= TOLERANCE[precision]
        if device == "cuda":
            row["ref_peak_mb"] = peak_extra_mb(ref)
            row["ours_peak_mb"] = peak_extra_mb(ours)
    except Exception as exc:  # noqa: BLE001  (one failed case must not hide the others)
        row.update(ok=False, error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    finally:
        if device == "cuda":
            torch.cuda.empty_cache()
    return row
