// The CUDA fused mean-field update's per-element maths, ATen-free: shared by update_fused_kernel
// (meanfield_kernels.cuh) and its host twin fused_update_host (meanfield_cpu.cpp), so a CPU test
// checks the kernel's tiles and rounding against the CPU update without a GPU.
#pragma once

#include "permutohedral/lattice.h"

#include <cstdint>

namespace deeplab_caffe {
namespace permutohedral {

// The kernels the fused update reads: blurred lattice values and what turns them into messages.
constexpr int kMaxFused = 8;
struct FusedSources {
  int K = 0;
  LatticeView lat[kMaxFused];
  const float* vals[kMaxFused] = {};  // (M_k, L) blurred values
  const float* post[kMaxFused] = {};  // (P,) or null
  const float* c[kMaxFused] = {};     // (L,) diagonal compatibility
  float alpha[kMaxFused] = {};
};

// Shared memory for the fused update's rows: tile * L floats, at most this many.
constexpr int64_t kFusedSharedFloats = 12288;  // 48 KiB, the default per-block limit
constexpr int64_t kFusedMaxTile = 64;
// Points per tile; 0 when one row of L labels does not fit (then the update cannot be fused).
inline int64_t fused_tile(int64_t L) {
  const int64_t t = kFusedSharedFloats / L;
  return t < kFusedMaxTile ? t : kFusedMaxTile;
}

// Whether the fused update can take an iteration's end: diagonal compatibilities only, at most
// kMaxFused kernels, and a tile of at least one point's row.
inline bool can_fuse(int64_t K, bool all_diagonal, int64_t L) {
  return all_diagonal && K <= kMaxFused && fused_tile(L) >= 1;
}

// a = -U - sum_k c_k[l] * (post_k[p] * slice_k(p, l)) for one (point, label), the slice rounded
// by slice_accumulate.  The lattice values' rows are vstride floats apart (L on the GPU, the padded
// stride on the CPU).
DC_HD float fused_update_value(const FusedSources& S, const float* U, int64_t L, int64_t vstride,
                               int64_t p, int64_t l) {
  float a = -U[p * L + l];
  for (int k = 0; k < S.K; ++k) {
    const int dp1 = S.lat[k].d + 1;
    const int32_t* off = S.lat[k].offsets + p * dp1;
    const float* wt = S.lat[k].weights + p * dp1;
    const float* vals = S.vals[k];
    float y = 0.0f;
    for (int j = 0; j < dp1; ++j)
      slice_accumulate(y, wt[j], vals[(int64_t)off[j] * vstride + l], S.alpha[k], L <= 2);
    if (S.post[k]) y = mul_rn(y, S.post[k][p]);
    a = sub_rn(a, mul_rn(S.c[k][l], y));
  }
  return a;
}

// In-place softmax of one row: max, exp(x - max), the sum in label order, divide (as the CPU's
// softmax_block).
DC_HD void softmax_row(float* row, int64_t L) {
  float mx = row[0];
  for (int64_t l = 1; l < L; ++l) mx = row[l] > mx ? row[l] : mx;
  for (int64_t l = 0; l < L; ++l) row[l] = exp_nonpositive(sub_rn(row[l], mx));
  float s = 0.0f;
  for (int64_t l = 0; l < L; ++l) s = add_rn(s, row[l]);
  for (int64_t l = 0; l < L; ++l) row[l] = div_rn(row[l], s);
}

// The CUDA update_fused_kernel's work run on the host, tile by tile and phase by phase as a
// block runs it (elements -> rows of a scratch tile, one softmax per row, tile -> Q rows
// qstride floats apart).  Serial: it is a check, not a fast path.  Needs fused_tile(L) >= 1.
void fused_update_host(const FusedSources& S, const float* U, int64_t P, int64_t L,
                       int64_t vstride, float* q, int64_t qstride);

}  // namespace permutohedral
}  // namespace deeplab_caffe
