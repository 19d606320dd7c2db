// CUDA kernels of the mean field's backward (meanfield_backward.h), free of ATen: the real build
// compiles them with nvcc, the emulated build as C++ on the CPU.  Each (point, label) element goes
// through the operations of the CPU twin's backward_rows (meanfield_backward_cpu.cpp) in the same
// order, one launch per step and kernel, so both give the same bits; the diagonal
// compatibilities' products are summed per block of kGradCompatBlock points in point order, in
// double, as the CPU sums them.
#pragma once

#include "permutohedral/lattice.h"
#include "permutohedral/meanfield_backward.h"

#include <cstdint>

namespace deeplab_caffe {
namespace permutohedral {

// gu -= g; g = 0: g's row becomes dL/dQ_t, accumulated kernel by kernel (the splats have read g).
__global__ void backward_start_kernel(float* __restrict__ g, float* __restrict__ gu, int64_t n) {
  DC_KERNEL_LOOP(i, n) {
    gu[i] = sub_rn(gu[i], g[i]);
    g[i] = 0.0f;
  }
}

// One kernel's adjoint slice r (as the filter's slice, without its post) and, for a diagonal
// compatibility, gq -= nb * (r * c) and prod = r * (nb * Q); for a matrix, r goes to r_out.
__global__ void backward_slice_kernel(LatticeView lat, const float* __restrict__ vals,
                                      float alpha, const float* __restrict__ nb,
                                      const float* __restrict__ c, const float* __restrict__ q,
                                      int64_t L, float* __restrict__ gq,
                                      float* __restrict__ prod, float* __restrict__ r_out) {
  DC_KERNEL_LOOP(i, lat.P * L) {
    const int64_t p = i / L, l = i % L;
    const int dp1 = lat.d + 1;
    float r = 0.0f;
    for (int j = 0; j < dp1; ++j)
      slice_accumulate(r, lat.weights[p * dp1 + j], vals[(int64_t)lat.offsets[p * dp1 + j] * L + l],
                       alpha, L <= 2);
    if (r_out) {
      r_out[i] = r;
    } else {
      const float qb = nb ? mul_rn(q[i], nb[p]) : q[i];
      prod[i] = mul_rn(r, qb);
      const float rc = mul_rn(r, c[l]);
      gq[i] = sub_rn(gq[i], nb ? mul_rn(nb[p], rc) : rc);
    }
  }
}

// A matrix compatibility's gq -= nb * (r C), the sum in label order.
__global__ void backward_matrix_kernel(const float* __restrict__ r, const float* __restrict__ c,
                                       const float* __restrict__ nb, int64_t P, int64_t L,
                                       float* __restrict__ gq) {
  DC_KERNEL_LOOP(i, P * L) {
    const int64_t p = i / L, j = i % L;
    float s = 0.0f;
    for (int64_t l = 0; l < L; ++l) s = add_rn(s, mul_rn(r[p * L + l], c[l * L + j]));
    gq[i] = sub_rn(gq[i], nb ? mul_rn(nb[p], s) : s);
  }
}

// part[(b, l)] += the block b's products of label l, in point order (double).
__global__ void backward_block_sums_kernel(const float* __restrict__ prod, int64_t P, int64_t L,
                                           int64_t blocks, int64_t stride,
                                           double* __restrict__ part) {
  DC_KERNEL_LOOP(i, blocks * L) {
    const int64_t b = i / L, l = i % L;
    const int64_t pe = (b + 1) * kGradCompatBlock < P ? (b + 1) * kGradCompatBlock : P;
    double s = part[b * stride + l];
    for (int64_t p = b * kGradCompatBlock; p < pe; ++p) s += (double)prod[p * L + l];
    part[b * stride + l] = s;
  }
}

// The softmax's backward in place: g = Q * (g - <g, Q>), the sum in label order.
__global__ void backward_softmax_kernel(const float* __restrict__ q, int64_t P, int64_t L,
                                        float* __restrict__ g) {
  DC_KERNEL_LOOP(p, P) {
    float s = 0.0f;
    for (int64_t l = 0; l < L; ++l) s = add_rn(s, mul_rn(g[p * L + l], q[p * L + l]));
    for (int64_t l = 0; l < L; ++l) g[p * L + l] = mul_rn(q[p * L + l], sub_rn(g[p * L + l], s));
  }
}

// grad_c[l] = -(the blocks' sums of label l, in block order), float.
__global__ void backward_compat_total_kernel(const double* __restrict__ part, int64_t blocks,
                                             int64_t stride, int64_t L,
                                             float* __restrict__ grad_c) {
  DC_KERNEL_LOOP(l, L) {
    double s = 0.0;
    for (int64_t b = 0; b < blocks; ++b) s += part[b * stride + l];
    grad_c[l] = (float)-s;
  }
}

}  // namespace permutohedral
}  // namespace deeplab_caffe
