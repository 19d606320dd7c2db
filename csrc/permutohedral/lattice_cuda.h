// The CUDA lattice filter's steps, for the mean-field glue (meanfield_cuda.cu): launched on a
// given stream, on raw device pointers.  Defined in lattice_cuda.cu; read after device_runtime.h.
#pragma once

#include "permutohedral/lattice.h"

#include <cstdint>

namespace deeplab_caffe {
namespace permutohedral {

// splat (times pre) and blur into buf_a/buf_b ((M, C) each); returns the one holding the result.
float* splat_blur_cuda(const LatticeView& L, const float* in, int64_t C, const float* pre,
                       bool reverse, float* buf_a, float* buf_b, dc_rt::Stream stream);

// out = post * slice(blur(splat(pre * in))), all (P, C) or (M, C) row-major.
void filter_values_cuda(const LatticeView& L, const float* in, int64_t C, const float* pre,
                        const float* post, bool reverse, float* out, float* buf_a, float* buf_b,
                        dc_rt::Stream stream);

}  // namespace permutohedral
}  // namespace deeplab_caffe
