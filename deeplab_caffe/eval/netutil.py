"""What the evaluation tools need to know about a DeepLab test net: command-line flags, device,
score blobs, progress.  (The CRF settings live in ``crf.params``, the image recovery in
``data.transform``.)

A DeepLab test prototxt ends in ``fc8_interp`` (upsampled scores) -> MAT_WRITE, optionally
-> DENSE_CRF -> ``crf_inf`` -> MAT_WRITE; the score blobs are found from that layout.
"""
import math
import re
import sys
import time
import torch

from ..crf.params import CRFParams
from ..errors import CaffeError

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(path):
    """The ``${NAME}`` placeholders a prototxt file uses, in order of first use."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise CaffeError(f"--model {path}: cannot read ({e})") from None
    return list(dict.fromkeys(_PLACEHOLDER.findall(text)))


def parse_defines(items):
    """["K=V", ...] (the --define flags) -> dict; a bad item is a CaffeError naming it."""
    out = {}
    for item in items or ():
        if "=" not in item or not item.split("=", 1)[0]:
            raise CaffeError(f"--define expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def device_from_gpu(gpu):
    """Caffe's --gpu: N -> cuda:N, -1 (or None) -> cpu."""
    if gpu is None or int(gpu) < 0:
        return "cpu"
    if not torch.cuda.is_available():
        raise CaffeError(f"--gpu {gpu}: no CUDA GPU is available (use --gpu -1 for the CPU)")
    if int(gpu) >= torch.cuda.device_count():
        raise CaffeError(f"--gpu {gpu}: only {torch.cuda.device_count()} GPU(s) present")
    return f"cuda:{int(gpu)}"


def layers_of_type(net, type_name):
    """[(index, layer name, layer)] of the net's layers with that V2 type name."""
    return [(i, n, l) for i, (n, l) in enumerate(zip(net.layer_names, net.layers))
            if l.type_name == type_name]


def find_score_blobs(net, data_blob="data", num_classes=None, score_blob=None, crf_blob=None):
    """(score blob, CRF blob or None) of a DeepLab test net.

    The CRF blob is the top of the first DenseCRF layer and the score blob its first bottom;
    without a CRF layer, the first MatWrite bottom; else the last 4-D blob with the data
    blob's spatial size (and num_classes channels, when given).  Explicit names win."""
    crfs = layers_of_type(net, "DenseCRF")
    if crf_blob is None and crfs:
        crf_blob = net._tops[crfs[0][0]][0]
    if score_blob is None:
        if crfs:
            score_blob = net._bottoms[crfs[0][0]][0]
        else:
            writes = layers_of_type(net, "MatWrite")
            if writes:
                score_blob = net._bottoms[writes[0][0]][0]
    if score_blob is None:
        data_shape = net.blob_shapes.get(data_blob)
        for tops in reversed(net._tops):
            for t in tops:
                s = net.blob_shapes.get(t, ())
                if len(s) == 4 and t != data_blob and s[1] > 1 and \
                        (data_shape is None or tuple(s[2:]) == tuple(data_shape[2:])) and \
                        (num_classes is None or s[1] == num_classes):
                    score_blob = t
                    break
            if score_blob is not None:
                break
    for name, what in ((score_blob, "score"), (crf_blob, "CRF")):
        if name is not None and name not in net.blob_shapes:
            raise CaffeError(f"--{what.lower()}-blob '{name}' is not a blob of net "
                             f"'{net.name}'")
    if score_blob is None:
        raise CaffeError(f"cannot tell which blob of net '{net.name}' holds the upsampled "
                         "scores (no DenseCRF or MatWrite layer, no 4-D blob of the data's "
                         "size); name it with --score-blob")
    return score_blob, crf_blob


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


class Progress:
    """A one-line progress bar with images/s on stderr (silent when ``enabled`` is False)."""

    def __init__(self, total, label="test", enabled=True, stream=None, width=30):
        self.total, self.label, self.enabled = int(total), label, enabled
        self._planned = self.total
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0

    @property
    def rate(self):
        dt = time.perf_counter() - self.start
        return self.done / dt if dt > 0 else float("nan")

    def update(self, n=1, extra=""):
        self.done += n
        self.total = max(self.total, self.done)
        now = time.perf_counter()
        if not self.enabled or (now - self._last < 0.2 and self.done != self._planned):
            return
        self._last = now
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        rate = self.rate
        eta = (self.total - self.done) / rate if rate and rate == rate and rate > 0 else math.nan
        eta_s = f" eta {eta:5.0f}s" if eta == eta else ""
        self.stream.write(f"\r{self.label} {self.done:>6}/{self.total} "
                          f"[{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{rate:6.2f} img/s{eta_s} {extra}")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
