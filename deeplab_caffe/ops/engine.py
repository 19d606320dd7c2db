"""Which convolution engine Caffe's ``engine: DEFAULT`` picks, from measurements.

CAFFE = our hole im2col + GEMM (deeplab_caffe.ops.conv2d_hole); CUDNN = PyTorch's native
convolution (cuDNN on a GPU, oneDNN / its own kernels on a CPU).  The table is keyed by device
type and precision; the measurements behind each entry are in docs/conv_engine.md (re-measure
with tools/bench_atrous.py and update both, with the numbers in the commit message).
"""
import torch

# (device type, precision) -> engine; precision is "fp32", "tf32" or "fp64".
DEFAULT_ENGINE = {
    ("cuda", "fp32"): "CAFFE",
    ("cuda", "tf32"): "CUDNN",
    ("cuda", "fp64"): "CAFFE",
    ("cpu", "fp32"): "CUDNN",
    ("cpu", "fp64"): "CUDNN",
}


def precision_of(x):
    if x.dtype == torch.float64:
        return "fp64"
    if x.device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "fp32"


def pick_engine(engine, x):
    """Resolve a ConvolutionParameter engine name ("DEFAULT", "CAFFE", "CUDNN") for input x."""
    if engine in ("CAFFE", "CUDNN"):
        return engine
    return DEFAULT_ENGINE.get((x.device.type, precision_of(x)), "CUDNN")
