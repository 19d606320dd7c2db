"""Builds deeplab_caffe._C: the C++ CPU kernels always, the CUDA kernels when
(torch.cuda.is_available() and a CUDA toolkit is found) or FORCE_CUDA=1.

Every csrc/**/*.cpp outside csrc/emu is a CPU/common source and every csrc/**/*.cu a CUDA source,
so a new kernel needs no edit here.  TORCH_CUDA_ARCH_LIST defaults to Hopper (9.0) when unset.

With DEEPLAB_CAFFE_EXT=emu it builds deeplab_caffe._emu instead, the emulated-CUDA build: every
csrc/**/*.cu compiled as C++ against the HIP CPU runtime (HIP_CPU_DIR, default
../shared/third_party/hip-cpu; needs TBB), with the device-generic sources (every .cpp that is not
a CPU twin *_cpu.cpp, not ops.cpp and not under csrc/emu) and csrc/emu/*.cpp, all in namespace
deeplab_caffe_emu; it registers torch.ops.deeplab_caffe_emu for CPU tensors.  The Makefile runs
it as `setup.py build_ext --inplace --build-temp build/emu` (see `make emu`).
"""
import glob
import os
import shlex

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


def sources(pattern, under="csrc"):
    found = glob.glob(os.path.join(ROOT, under, "**", pattern), recursive=True)
    rel = (os.path.relpath(p, ROOT) for p in found)
    if under == "csrc":  # the emulated runtime belongs to deeplab_caffe._emu only
        rel = (p for p in rel if not p.startswith(os.path.join("csrc", "emu", "")))
    return sorted(rel)


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


def emulable(cu):
    """A .cu file goes through device_runtime.h (DC_LAUNCH, dc_rt) or the emulated build cannot
    compile it (<<<>>> launches, CUDA runtime calls)."""
    with open(os.path.join(ROOT, cu)) as f:
        return '#include "device_runtime.h"' in f.read()


def hip_cpu_dir():
    d = os.environ.get("HIP_CPU_DIR") or os.path.join(ROOT, "..", "shared", "third_party",
                                                       "hip-cpu")
    return os.path.abspath(d)


def emu_units():
    """One generated .cpp per .cu (torch's build sends .cu files to nvcc), each including it, under
    build/emu/units so the tree stays clean; rewritten only when its text changes, so ninja
    rebuilds only what changed."""
    units = []
    out_dir = os.path.join(ROOT, "build", "emu", "units")
    for cu in sources("*.cu"):
        if not emulable(cu):
            print(f"emulated build: {cu} does not include device_runtime.h: left out")
            continue
        unit = os.path.join(out_dir, cu.replace(os.sep, "__") + ".cpp")
        text = f'#include "{os.path.join(ROOT, cu)}"\n'
        os.makedirs(out_dir, exist_ok=True)
        if not os.path.exists(unit) or open(unit).read() != text:
            with open(unit, "w") as f:
                f.write(text)
        units.append(os.path.relpath(unit, ROOT))
    return units


def emu_extension():
    hip = hip_cpu_dir()
    if not os.path.exists(os.path.join(hip, "include", "hip", "hip_runtime.h")):
        raise RuntimeError(f"emulated build: no HIP CPU runtime at {hip} (set HIP_CPU_DIR)")
    generic = [p for p in sources("*.cpp")
               if not p.endswith("_cpu.cpp") and os.path.basename(p) != "ops.cpp"]
    srcs = generic + sources("*.cpp", under=os.path.join("csrc", "emu")) + emu_units()
    omp = openmp_flags()
    # -ffp-contract=off: nvcc's __fmul_rn/__fadd_rn never fuse, so neither may their stand-ins.
    # deeplab_caffe is renamed so these inline functions (device branches of shared headers)
    # cannot collide with the CPU twins' in _C.
    cxx = ["-O2", "-g0", "-ffp-contract=off", "-DDEEPLAB_CAFFE_EMU",
           "-Ddeeplab_caffe=deeplab_caffe_emu", "-Wno-attributes"] + omp
    cxx += shlex.split(os.environ.get("DEEPLAB_CAFFE_EMU_CXXFLAGS", ""))
    link = ["-ltbb", "-pthread"] + omp + shlex.split(os.environ.get("DEEPLAB_CAFFE_EMU_LDFLAGS", ""))
    return CppExtension("deeplab_caffe._emu", srcs,
                        include_dirs=[os.path.join(ROOT, "csrc"), os.path.join(hip, "include")],
                        extra_compile_args={"cxx": cxx + ["-pthread"]}, extra_link_args=link)


def extensions():
    if os.environ.get("DEEPLAB_CAFFE_EXT") == "emu":
        return [emu_extension()]
    return [extension()]


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
    # BVLC's data layers import these only when used (Data: lmdb or plyvel; HDF5Data /
    # HDF5Output: h5py), with an error naming the package; DeepLab's own pipeline needs none.
    extras_require={"data": ["lmdb", "h5py"], "leveldb": ["plyvel"]},
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    zip_safe=False,
)
