// The permutohedral filter in float64, one output element at a time, shared by the CPU loops
// (filter_f64_cpu.cpp) and the CUDA kernels (filter_f64_cuda.cu): the same splat, [1 2 1]/2 blur
// and slice (times densecrf's alpha) as the float32 filter on the same lattice, so that the
// filter and the mean field built on it can be gradient-checked in double precision (the float32
// kernels' finite differences drown in rounding).  Not tuned: a reference path.
#pragma once

#include "permutohedral/lattice.h"

namespace deeplab_caffe {
namespace permutohedral {

// Vertex v's splatted value of channel c: its (point, corner) entries from the CSR lists.
DC_HD double splat_vertex_f64(const LatticeView& L, const double* in, int64_t C, int64_t v,
                              int64_t c) {
  const int dp1 = L.d + 1;
  double s = 0.0;
  for (int32_t k = L.splat_ptr[v]; k < L.splat_ptr[v + 1]; ++k) {
    const int32_t e = L.splat_src[k];
    s += (double)L.weights[e] * in[(int64_t)(e / dp1) * C + c];
  }
  return s;
}

// One blur step along an axis for element (v, c); nb is that axis's (M, 2) neighbour table.
DC_HD double blur_elem_f64(const int32_t* nb, const double* cur, int64_t C, int64_t v, int64_t c) {
  const int32_t n1 = nb[2 * v], n2 = nb[2 * v + 1];
  const double a = n1 >= 0 ? cur[(int64_t)n1 * C + c] : 0.0;
  const double z = n2 >= 0 ? cur[(int64_t)n2 * C + c] : 0.0;
  return cur[v * C + c] + 0.5 * (a + z);
}

DC_HD double slice_elem_f64(const LatticeView& L, const double* vals, int64_t C, double alpha,
                            int64_t p, int64_t c) {
  const int dp1 = L.d + 1;
  double y = 0.0;
  for (int j = 0; j < dp1; ++j)
    y += (double)L.weights[p * dp1 + j] * vals[(int64_t)L.offsets[p * dp1 + j] * C + c];
  return y * alpha;
}

}  // namespace permutohedral
}  // namespace deeplab_caffe
