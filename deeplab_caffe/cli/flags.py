"""The command-line flags the tools share, read as Caffe's gflags read them.

``-flag``, ``--flag=x`` and ``--flag x`` all work; ``--gpu`` picks the device (Caffe's
convention: an index, a comma list or ``all``, -1 for the CPU); ``--define KEY=VALUE`` fills
the ``${KEY}`` placeholders of prototxt files; the dense-CRF flags carry DeepLab's settings.
"""
import os
import re

import torch

from ..errors import CaffeError
from ..crf.params import CRFParams

# The checkout holding this package (an editable install): prototxt/ lives there, not in the
# package.
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ONE_DASH_FLAG = re.compile(r"-[A-Za-z_][A-Za-z0-9_]")
# A comma that starts another KEY=VALUE item; other commas belong to the value.
_NEXT_DEFINE = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)")


def checkout_path(*parts):
    """A path inside the checkout (prototxt/demo, prototxt/DeepLab-LargeFOV/...)."""
    return os.path.join(CHECKOUT, *parts)


def gflags_argv(argv):
    """``-flag`` -> ``--flag`` (gflags accepts one dash); negative numbers stay values."""
    return ["-" + a if _ONE_DASH_FLAG.match(a) and not a.startswith("--") else a
            for a in argv]


def parse_defines(items):
    """The --define flags (["K=V", "A=1,B=2", ...]) -> {K: V}.

    An item may hold several definitions separated by commas; a comma not followed by
    ``KEY=`` is part of the value.  A bad item is a CaffeError naming it."""
    out = {}
    for flag in items or ():
        for item in _NEXT_DEFINE.split(flag):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise CaffeError(f"--define expects KEY=VALUE, got {item!r}")
            out[key.strip()] = value
    return out


def device_from_gpu(gpu):
    """Caffe's --gpu for one device: N -> cuda:N, -1, empty (or None) -> cpu."""
    try:
        index = -1 if gpu is None or str(gpu).strip() == "" else int(gpu)
    except ValueError:
        raise CaffeError(f"--gpu expects a GPU index or -1 for the CPU, got {gpu!r}") from None
    if index < 0:
        return "cpu"
    if not torch.cuda.is_available():
        raise CaffeError(f"--gpu {gpu}: no CUDA GPU is available (use --gpu -1 for the CPU)")
    if index >= torch.cuda.device_count():
        raise CaffeError(f"--gpu {gpu}: only {torch.cuda.device_count()} GPU(s) present")
    return f"cuda:{index}"


def devices_from_gpu(gpu, cpu_ranks=1):
    """Caffe's --gpu for training: one device per rank.  None (no flag): [None], the solver
    file decides; -1 or empty (``--gpu=``, as DeepLab's scripts pass an empty GPU_ID for the
    CPU): ``cpu_ranks`` CPU ranks; ``all`` or ``0,1``: those GPUs."""
    if gpu is None:
        return [None]
    if gpu.strip() in ("", "-1"):
        return ["cpu"] * max(1, cpu_ranks)
    if gpu == "all":
        n = torch.cuda.device_count()
        if n == 0:
            raise CaffeError("--gpu all, but no CUDA GPU is available")
        return [f"cuda:{i}" for i in range(n)]
    try:
        ids = [int(x) for x in gpu.split(",")]
    except ValueError:
        raise CaffeError(f"bad --gpu {gpu!r}") from None
    if not torch.cuda.is_available():
        raise CaffeError(f"--gpu {gpu}, but no CUDA GPU is available; use --gpu -1 for the CPU")
    return [device_from_gpu(i) for i in ids]


def add_net_flags(ap, model_help, weights_help=".caffemodel or .pt (random fillers without it)"):
    """--model, --weights, --gpu (one device, default -1) and --define."""
    ap.add_argument("--model", required=True, help=model_help)
    ap.add_argument("--weights", help=weights_help)
    ap.add_argument("--gpu", type=int, default=-1, help="GPU index, -1 = CPU (default)")
    ap.add_argument("--define", action="append", default=[], metavar="KEY=VALUE",
                    help="fill ${KEY} in the prototxt (repeatable)")


def add_crf_args(ap):
    """The --bi-w/--bi-xy-std/--bi-rgb-std/--pos-w/--pos-xy-std/--crf-iter flags."""
    d = CRFParams()
    g = ap.add_argument_group("dense CRF (when the net has no DENSE_CRF layer)")
    g.add_argument("--bi-w", type=float, default=d.bi_w, help=f"w1 (default {d.bi_w:g})")
    g.add_argument("--bi-xy-std", type=float, default=d.bi_xy_std,
                   help=f"sigma_alpha, pixels (default {d.bi_xy_std:g})")
    g.add_argument("--bi-rgb-std", type=float, default=d.bi_rgb_std,
                   help=f"sigma_beta, colour levels (default {d.bi_rgb_std:g})")
    g.add_argument("--pos-w", type=float, default=d.pos_w, help=f"w2 (default {d.pos_w:g})")
    g.add_argument("--pos-xy-std", type=float, default=d.pos_xy_std,
                   help=f"sigma_gamma, pixels (default {d.pos_xy_std:g})")
    g.add_argument("--crf-iter", type=int, default=d.max_iter,
                   help=f"mean-field iterations (default {d.max_iter})")


def crf_params(args):
    """CRFParams from the flags of add_crf_args."""
    return CRFParams(args.bi_w, args.bi_xy_std, args.bi_rgb_std, args.pos_w, args.pos_xy_std,
                     args.crf_iter)


def parse_widths(text, flag="--trimap"):
    """Trimap band widths: "A-B" (A..B inclusive) or a comma list, each >= 0."""
    try:
        if "-" in text:
            a, b = (int(v) for v in text.split("-", 1))
            widths = list(range(a, b + 1))
        else:
            widths = [int(v) for v in text.split(",")]
    except ValueError:
        raise CaffeError(f"{flag} expects A-B or a comma list of widths, got {text!r}") \
            from None
    if not widths or min(widths) < 0:
        raise CaffeError(f"{flag} widths must be >= 0, got {text!r}")
    return widths
