// Shared helpers for the kernels: argument checks that raise Python ValueError with the argument's
// name and value.
#pragma once

// ATen and the op registry only: torch/extension.h (autograd, nn, pybind11) would double the
// compile time of every kernel file.  ops.cpp alone includes it, for the Python module.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

// TORCH_CHECK_VALUE surfaces in Python as ValueError.
#define DC_CHECK_ARG(cond, ...) TORCH_CHECK_VALUE(cond, __VA_ARGS__)

namespace deeplab_caffe {

inline void check_float(const at::Tensor& t, const char* name) {
  DC_CHECK_ARG(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
               " must be float32 or float64, got ", t.scalar_type());
}

inline void check_same(const at::Tensor& a, const char* an, const at::Tensor& b, const char* bn) {
  DC_CHECK_ARG(a.device() == b.device(), an, " is on ", a.device(), " but ", bn, " is on ",
               b.device());
  DC_CHECK_ARG(a.scalar_type() == b.scalar_type(), an, " is ", a.scalar_type(), " but ", bn,
               " is ", b.scalar_type());
}

inline void check_dim(const at::Tensor& t, int64_t dim, const char* name, const char* layout) {
  DC_CHECK_ARG(t.dim() == dim, name, " must be ", dim, "-D ", layout, ", got shape ", t.sizes());
}

}  // namespace deeplab_caffe

// The kernel launch helpers (DC_KERNEL_LOOP, kThreads, num_blocks) live in device_runtime.h; a
// .cu file that reads this header gets them under nvcc even before it includes that header.
#ifdef __CUDACC__
#include "device_runtime.h"
#endif
