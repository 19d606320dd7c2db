"""Caffe's weight fillers (BVLC ``include/caffe/filler.hpp``), applied to torch tensors in place.

A filler is described by a FillerParameter ``Message`` (fields ``type``, ``value``, ``min``,
``max``, ``mean``, ``std``, ``sparse``, ``variance_norm``); an absent message means Caffe's
default for a missing ``weight_filler``: constant 0.

Fan-in and fan-out follow Caffe's legacy blob accessors for a blob (num, channels, ...):
fan_in = count / num and fan_out = count / channels (count for a 1-D blob), e.g. a convolution
weight (num_output, C/group, kh, kw) has fan_in = C/group*kh*kw.
"""
import math

import torch

from .errors import CaffeError

# FillerParameter defaults (caffe.proto); ``std`` defaults to 1, not 0.
_DEFAULTS = {"type": "constant", "value": 0.0, "min": 0.0, "max": 1.0, "mean": 0.0, "std": 1.0,
             "sparse": -1, "variance_norm": "FAN_IN"}

FILLER_TYPES = ("constant", "uniform", "gaussian", "xavier", "msra", "positive_unitball",
                "bilinear")


def filler_field(filler, name):
    """The field's value with Caffe's default when absent (``filler`` may be None)."""
    if filler is None:
        return _DEFAULTS[name]
    return filler.get(name, _DEFAULTS[name])


def caffe_fans(shape):
    """(fan_in, fan_out) of a blob shape as Caffe computes them (see module docstring)."""
    count = 1
    for d in shape:
        count *= int(d)
    if len(shape) == 0 or count == 0:
        return count, count
    fan_in = count // int(shape[0])
    fan_out = count // int(shape[1]) if len(shape) > 1 else count
    return fan_in, fan_out


def _random(shape, dtype, generator, kind, a, b, device):
    """Draws on the generator's device when one is given (so a seeded CPU generator gives the
    same numbers whatever device the target lives on), else on ``device`` from torch's default
    generator there."""
    if generator is not None:
        device = generator.device
    out = torch.empty(shape, dtype=dtype, device=device)
    if kind == "uniform":
        out.uniform_(a, b, generator=generator)
    else:
        out.normal_(a, b, generator=generator)
    return out


def _require_no_sparse(filler, type_name):
    if filler_field(filler, "sparse") != -1:
        raise CaffeError(f"filler '{type_name}' does not support sparse "
                         f"(sparse: {filler_field(filler, 'sparse')}); only 'gaussian' does")


def _norm_count(filler, fan_in, fan_out, type_name):
    norm = filler_field(filler, "variance_norm")
    if norm == "FAN_IN":
        n = float(fan_in)
    elif norm == "FAN_OUT":
        n = float(fan_out)
    elif norm == "AVERAGE":
        n = (fan_in + fan_out) / 2.0
    else:
        raise CaffeError(f"filler '{type_name}': unknown variance_norm '{norm}' "
                         "(expected FAN_IN, FAN_OUT or AVERAGE)")
    if n <= 0:
        raise CaffeError(f"filler '{type_name}' needs a blob with a non-zero fan "
                         f"(fan_in={fan_in}, fan_out={fan_out})")
    return n


def bilinear_kernel(shape, dtype=torch.float64):
    """Caffe's bilinear upsampling weights for a (num, channels, k, k) Deconvolution blob, as
    BVLC master's BilinearFiller has them since 2017.

    Every (num, channel) slice gets the same separable kernel
    (1 - |x/f - c|)(1 - |y/f - c|) with f = ceil(k/2) and c = (k - 1) / (2f): symmetric, so
    k = 3 gives [.5 1 .5] per axis.  (The formula before, c = (2f - 1 - f%2) / (2f), equals it
    for even k and odd f but shifts odd kernels with even f, e.g. k = 3 gave [.25 .75 .75].
    DeepLab v1's fork has no bilinear filler.)  As Caffe, x / f - c is taken in the blob's type
    and the rest in double (C's fabs), rounded once to the blob's type.
    """
    if len(shape) != 4:
        raise CaffeError(f"filler 'bilinear' needs a 4-D blob, got shape {tuple(shape)}")
    kh, kw = int(shape[2]), int(shape[3])
    if kh != kw:
        raise CaffeError(f"filler 'bilinear' needs a square kernel, got {kh}x{kw}")
    f = math.ceil(kw / 2.0)
    c = torch.tensor((kw - 1) / (2.0 * f), dtype=dtype)
    offset = torch.arange(kw, dtype=dtype) / f - c
    w1 = 1.0 - torch.abs(offset.double())
    kernel = w1[:, None] * w1[None, :]
    return kernel.expand(int(shape[0]), int(shape[1]), kh, kw).to(dtype).clone()


def fill(tensor, filler, fan_in=None, fan_out=None, generator=None):
    """Fill ``tensor`` in place as Caffe's filler ``filler`` would, and return it.

    tensor: any shape; Caffe's legacy (num, channels, height, width) reading gives the fans.
    filler: a FillerParameter Message, or None for Caffe's default (constant 0).
    fan_in, fan_out: override the fans computed from the shape (xavier, msra).
    generator: a torch.Generator for the random fillers; None uses torch's default generator
      of the tensor's device.
    """
    type_name = filler_field(filler, "type")
    shape = tuple(tensor.shape)
    dtype = tensor.dtype
    dev = tensor.device
    with torch.no_grad():
        if type_name == "constant":
            _require_no_sparse(filler, type_name)
            tensor.fill_(float(filler_field(filler, "value")))
            return tensor
        if type_name == "uniform":
            _require_no_sparse(filler, type_name)
            lo, hi = float(filler_field(filler, "min")), float(filler_field(filler, "max"))
            if hi < lo:
                raise CaffeError(f"filler 'uniform': max ({hi}) < min ({lo})")
            values = _random(shape, dtype, generator, "uniform", lo, hi, dev)
        elif type_name == "gaussian":
            values = _gaussian(filler, shape, dtype, generator, dev)
        elif type_name in ("xavier", "msra"):
            _require_no_sparse(filler, type_name)
            computed_in, computed_out = caffe_fans(shape)
            n = _norm_count(filler, computed_in if fan_in is None else fan_in,
                            computed_out if fan_out is None else fan_out, type_name)
            if type_name == "xavier":
                bound = math.sqrt(3.0 / n)
                values = _random(shape, dtype, generator, "uniform", -bound, bound, dev)
            else:
                values = _random(shape, dtype, generator, "normal", 0.0, math.sqrt(2.0 / n), dev)
        elif type_name == "positive_unitball":
            _require_no_sparse(filler, type_name)
            values = _random(shape, torch.float64, generator, "uniform", 0.0, 1.0, dev)
            if len(shape) > 0 and values.numel() > 0:
                # Each of the `num` rows (count/num values) sums to one.
                rows = values.reshape(shape[0], -1)
                values = (rows / rows.sum(dim=1, keepdim=True)).reshape(shape)
            values = values.to(dtype)
        elif type_name == "bilinear":
            _require_no_sparse(filler, type_name)
            values = bilinear_kernel(shape, dtype)
        else:
            raise CaffeError(f"unknown filler type '{type_name}' "
                             f"(known: {', '.join(FILLER_TYPES)})")
        tensor.copy_(values.to(tensor.device))
    return tensor


def _gaussian(filler, shape, dtype, generator, dev):
    mean, std = float(filler_field(filler, "mean")), float(filler_field(filler, "std"))
    if std < 0:
        raise CaffeError(f"filler 'gaussian': std must be >= 0, got {std}")
    values = _random(shape, dtype, generator, "normal", mean, std, dev) if std > 0 else \
        torch.full(shape, mean, dtype=dtype, device=dev)
    sparse = int(filler_field(filler, "sparse"))
    if sparse >= 0:
        # Caffe keeps each weight with probability sparse / num_outputs, so on average each
        # output unit keeps `sparse` non-zero inputs.
        if len(shape) < 1 or shape[0] == 0:
            raise CaffeError(f"filler 'gaussian' with sparse needs a blob with outputs, "
                             f"got shape {shape}")
        p = min(1.0, sparse / float(shape[0]))
        keep = _random(shape, torch.float64, generator, "uniform", 0.0, 1.0, dev) < p
        values = values * keep.to(dtype)
    return values
