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


def wheel_cuda_includes():
    if CUDA_HOME and os.path.exists(os.path.join(CUDA_HOME, "include", "cusparse.h")):
        return []
    try:
        import nvidia
    except ImportError:
        return []
    found = []
    for base in list(nvidia.__path__):
        for sub in sorted(os.listdir(base)):
            inc = os.path.join(base, sub, "include")
            if os.path.exists(os.path.join(inc, "cusparse.h")):
                found.append(inc)
    return found


def openmp_flags():
    """-fopenmp when torch's intra-op pool is OpenMP.  at::parallel_for is a header template:
    compiled without _OPENMP it runs every loop on the calling thread, whatever
    torch.set_num_threads says.  Linking -fopenmp names libgomp.so.1, the soname of the copy torch
    already loaded, so the extension shares torch's runtime and thread count."""
    if "OpenMP" in torch.__config__.parallel_info() and os.name == "posix":
        return ["-fopenmp"]
    return []


def extension():
    omp = openmp_flags()
    cxx = ["-O3", "-g0"] + omp  # torch picks the C++ standard it needs (C++20 from 2.13 on)
    define_macros = []
    srcs = sources("*.cpp")
    if want_cuda():
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
        define_macros.append(("WITH_CUDA", None))
        nvcc = ["-O3", "--expt-relaxed-constexpr", "-lineinfo"]
        ext = CUDAExtension("deeplab_caffe._C", srcs + sources("*.cu"),
                            include_dirs=[os.path.join(ROOT, "csrc")],
                            define_macros=define_macros,
                            extra_compile_args={"cxx": cxx, "nvcc": nvcc},
                            extra_link_args=omp)
        # A bare CUDA toolkit (nvcc + runtime only, as on the CI machines) lacks the cuBLAS /
        # cuSPARSE headers that ATen's CUDA headers include; the nvidia-* wheels that come with
        # a CUDA build of torch have them.  Searched last, after the toolkit's own headers.
        ext.include_dirs.extend(wheel_cuda_includes())
        return ext
    return CppExtension("deeplab_caffe._C", srcs, include_dirs=[os.path.join(ROOT, "csrc")],
                        define_macros=define_macros, extra_compile_args={"cxx": cxx},
                        extra_link_args=omp)


setup(
    name="deeplab_caffe",
    version="0.1.0",
    description="DeepLab v1 (ICLR 2015) rebuilt Caffe-style on PyTorch: hole im2col and "
                "permutohedral dense CRF kernels, prototxt nets, caffemodel I/O",
    packages=find_packages(include=["deeplab_caffe", "deeplab_caffe.*"]),
    python_requires=">=3.9",
    # scipy.io reads and writes the MAT files of DeepLab's MAT_WRITE / MAT_READ layers.
    install_requires=["torch", "numpy", "pillow", "scipy"],
    entry_points={"console_scripts": ["deeplab-caffe = deeplab_caffe.cli.caffe:main"]},
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    zip_safe=False,
)
