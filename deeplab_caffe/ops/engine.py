"""Which convolution engine Caffe's ``engine: DEFAULT`` picks, from measurements.

CAFFE = our hole im2col + GEMM (deeplab_caffe.ops.conv2d_hole); CUDNN = PyTorch's native
convolution (cuDNN on a GPU, oneDNN / its own kernels on a CPU).  The table is keyed by device
type and precision.  Sources: reference/gpu_anchors.md (H200: in FP32 cuBLAS's GEMM alone beats
cuDNN's dilated convolution by 1.1-1.56x on every DeepLab layer, in TF32 cuDNN beats the GEMM
alone by 1.4-2.1x) and tools/bench_atrous.py on the CPU (PyTorch's CPU convolution is faster than
im2col + GEMM there).  Re-measure with tools/bench_atrous.py and update the table with the
numbers in the commit message.
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
