// CUDA kernels of the mean-field iterations (the end of an iteration: slice + update + softmax,
// fused or one kernel per step), free of ATen: the real build compiles them with nvcc, the
// emulated build as C++ on the CPU.  Launched by meanfield_cuda.cu; the splat, blur and slice
// are lattice_kernels.cuh's, reached through lattice_cuda.h.
#pragma once

#include "permutohedral/fused_update.h"

#include <cstdint>

namespace deeplab_caffe {
namespace permutohedral {

// q rows = softmax(sign * x rows): the signed row copied into Q, then softmax_row (the one
// softmax of the fused update and of its host twin).
__global__ void softmax_kernel(const float* __restrict__ x, float* __restrict__ q, int64_t P,
                               int64_t L, float sign) {
  DC_KERNEL_LOOP(p, P) {
    float* qr = q + p * L;
    for (int64_t l = 0; l < L; ++l) qr[l] = sign * x[p * L + l];
    softmax_row(qr, L);
  }
}

__global__ void accumulate_kernel(const float* __restrict__ U, const float* __restrict__ msg,
                                  const float* __restrict__ compat, bool full, bool first,
                                  int64_t P, int64_t L, float* __restrict__ acc) {
  DC_KERNEL_LOOP(i, P * L) {
    const int64_t p = i / L, l = i % L;
    float a = first ? -U[i] : acc[i];
    if (full) {
      float s = 0.0f;
      for (int64_t j = 0; j < L; ++j) s = add_rn(s, mul_rn(compat[l * L + j], msg[p * L + j]));
      a = sub_rn(a, s);
    } else {
      a = sub_rn(a, mul_rn(compat[l], msg[i]));
    }
    acc[i] = a;
  }
}

// The end of one iteration in one launch, for diagonal (Potts) compatibilities: every kernel's
// slice, the update a = -U - sum_k c_k * (post_k * slice_k) and the softmax of a, written into Q
// (fused_update_value and softmax_row, shared with the host twin fused_update_host).  The same
// operations in the same order as slice_kernel + accumulate_kernel + softmax_kernel (so the same
// bits), without the (P, L) message and accumulator round trips or their launches.  A block
// takes `tile` points at a time: the (point, label) elements are spread over its threads
// (neighbouring labels read neighbouring floats of a lattice row), the rows meet in shared
// memory (tile * L floats), one thread per point takes its softmax, and the tile goes back to Q
// coalesced.
__global__ void update_fused_kernel(FusedSources S, const float* __restrict__ U, int64_t P,
                                    int64_t L, int64_t tile, float* __restrict__ q) {
  DC_DYNAMIC_SHARED(float, rows);
  for (int64_t p0 = (int64_t)blockIdx.x * tile; p0 < P; p0 += (int64_t)gridDim.x * tile) {
    const int64_t np = P - p0 < tile ? P - p0 : tile, n = np * L;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      rows[i] = fused_update_value(S, U, L, L, p0 + i / L, i % L);
    __syncthreads();
    for (int64_t r = threadIdx.x; r < np; r += blockDim.x) softmax_row(rows + r * L, L);
    __syncthreads();
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) q[p0 * L + i] = rows[i];
    __syncthreads();
  }
}

}  // namespace permutohedral
}  // namespace deeplab_caffe
