// The deeplab_caffe op library (schemas in op_schemas.h) and build diagnostics.
// Each backend registers its implementations beside its kernels (TORCH_LIBRARY_IMPL in the
// *_cpu.cpp files, DC_REGISTER_DEVICE_OPS in the *_cuda.cu files), so adding a kernel touches
// op_schemas.h only for its schema line.
#include <torch/extension.h>

#include "op_schemas.h"

#ifdef WITH_CUDA
#include <cuda_runtime_api.h>
#endif

TORCH_LIBRARY(deeplab_caffe, m) { deeplab_caffe::define_ops(m); }

namespace {

pybind11::dict build_info() {
  pybind11::dict d;
#ifdef WITH_CUDA
  d["with_cuda"] = true;
  d["cuda_version"] = std::to_string(CUDART_VERSION / 1000) + "." +
                      std::to_string((CUDART_VERSION % 1000) / 10);
#else
  d["with_cuda"] = false;
  d["cuda_version"] = pybind11::none();
#endif
#if defined(__clang__)
  d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  d["compiler"] = std::string("gcc ") + __VERSION__;
#else
  d["compiler"] = std::string("unknown");
#endif
  d["cxx_standard"] = (long)__cplusplus;
  // at::parallel_for is a header template: without _OPENMP (no -fopenmp) every CPU kernel loop
  // runs on the calling thread whatever torch.set_num_threads says.
#ifdef _OPENMP
  d["openmp"] = true;
#else
  d["openmp"] = false;
#endif
  return d;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "deeplab_caffe C++/CUDA kernels (ops are under torch.ops.deeplab_caffe)";
  m.def("build_info", &build_info, "How this extension was built (with_cuda, cuda_version, ...)");
}
