"""Builds deeplab_caffe._C: the C++ CPU kernels always, the CUDA kernels when
(torch.cuda.is_available() and a CUDA toolkit is found) or FORCE_CUDA=1.

Every csrc/**/*.cpp is a CPU/common source and every csrc/**/*.cu a CUDA source, so a new kernel
needs no edit here.  TORCH_CUDA_ARCH_LIST defaults to Hopper (9.0) when unset.
"""
import glob
import os

from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
import torch

ROOT = os.path.dirname(os.path.abspath(__file__))


def want_cuda():
    if os.environ.get("FORCE_CUDA", "0") == "1":
        if CUDA_HOME is None:
            raise RuntimeError("FORCE_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME")
        return True
    return torch.cuda.is_available() and CUDA_HOME is not None


def sources(pattern):
    return sorted(os.path.relpath(p, ROOT)
                  for p in glob.glob(os.path.join(ROOT, "csrc", "**", pattern), recursive=True))


def extension():
    cxx = ["-O3", "-std=c++17"]
    define_macros = []
    srcs = sources("*.cpp")
    if want_cuda():
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
        define_macros.append(("WITH_CUDA", None))
        nvcc = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "-lineinfo"]
        return CUDAExtension("deeplab_caffe._C", srcs + sources("*.cu"),
                             include_dirs=[os.path.join(ROOT, "csrc")],
                             define_macros=define_macros,
                             extra_compile_args={"cxx": cxx, "nvcc": nvcc})
    return CppExtension("deeplab_caffe._C", srcs, include_dirs=[os.path.join(ROOT, "csrc")],
                        define_macros=define_macros, extra_compile_args={"cxx": cxx})


setup(
    name="deeplab_caffe",
    version="0.1.0",
    description="DeepLab v1 (ICLR 2015) rebuilt Caffe-style on PyTorch: hole im2col and "
                "permutohedral dense CRF kernels, prototxt nets, caffemodel I/O",
    packages=find_packages(include=["deeplab_caffe", "deeplab_caffe.*"]),
    python_requires=">=3.9",
    install_requires=["torch", "numpy", "pillow"],
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    zip_safe=False,
)
