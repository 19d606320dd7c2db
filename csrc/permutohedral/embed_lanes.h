// The CPU builder's embedding of 8 points at once: embed_point's operations (lattice.h), lane by
// lane in GCC vector types, so the same rounding, ranks and weights bit for bit.  The scalar code's
// rank comparisons are data-dependent branches that mispredict about half the time; here they
// are compares and selects, and the barycentric scatter b[d - rank] becomes a select per slot.
// Included by lattice_build_cpu.cpp only (CPU).
#pragma once

#include "permutohedral/lattice.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace deeplab_caffe {
namespace permutohedral {

constexpr int kEmbedLanes = 8;
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

// round_even on each lane: the same magic-constant rounding for |a| < 2^22, and the rare larger
// (or non-finite) lanes through round_even itself.
__attribute__((always_inline)) inline v8f round_even_lanes(v8f a) {
  const v8f t = (a + 12582912.0f) - 12582912.0f;
  v8i bits;
  std::memcpy(&bits, &a, sizeof(a));
  const v8i mag = bits & 0x7FFFFFFF;
  v8f absa;
  std::memcpy(&absa, &mag, sizeof(absa));
  const v8i small = absa < 4194304.0f;
  v8f out = small ? t : a;
  for (int l = 0; l < kEmbedLanes; ++l)
    if (!small[l]) out[l] = round_even(a[l]);
  return out;
}

// Embeds points f[0..8) (rows of D features): rem0, rank and bary as embed_point writes them,
// rows of D+1 per point.  Returns a mask of the points embed_point would reject (bit l: point l).
template <int D>
__attribute__((always_inline)) inline int embed_lanes(const float* f, const float* scale,
                                                      int32_t* rem0_out, int32_t* rank_out,
                                                      float* bary_out) {
  constexpr int dp1 = D + 1, N = kEmbedLanes;
  const float inv_dp1 = 1.0f / (float)dp1;
  const float fdp1 = (float)dp1;
  v8f elevated[dp1], rem0f[dp1];
  v8i rank[dp1];
  v8f sm = {};
  for (int j = D; j > 0; --j) {
    v8f x;
    for (int l = 0; l < N; ++l) x[l] = f[l * D + j - 1];
    const v8f cf = x * scale[j - 1];
    elevated[j] = sm - (float)j * cf;
    sm = sm + cf;
  }
  elevated[0] = sm;
  v8f sum = {};
  v8i ok = ~v8i{};
  for (int i = 0; i <= D; ++i) {
    const v8f v = round_even_lanes(inv_dp1 * elevated[i]);
    v8i vb;
    std::memcpy(&vb, &v, sizeof(v));
    vb &= 0x7FFFFFFF;
    v8f av;
    std::memcpy(&av, &vb, sizeof(av));
    ok &= av < kMaxCoord / fdp1;  // false for NaN too
    rem0f[i] = v * fdp1;
    sum = sum + v;
  }
  int bad = 0;
  for (int l = 0; l < N; ++l) bad |= ok[l] ? 0 : 1 << l;
  if (bad) return bad;
  for (int i = 0; i <= D; ++i) rank[i] = v8i{};
  for (int i = 0; i < D; ++i) {
    const v8f di = elevated[i] - rem0f[i];
    for (int j = i + 1; j <= D; ++j) {
      const v8i lt = di < (elevated[j] - rem0f[j]);  // -1 where true
      rank[i] -= lt;
      rank[j] += lt + 1;
    }
  }
  const v8i isum = __builtin_convertvector(sum, v8i);
  for (int i = 0; i <= D; ++i) {
    rank[i] += isum;
    v8i r0 = __builtin_convertvector(rem0f[i], v8i);
    const v8i shift = (rank[i] < 0 ? v8i{} + dp1 : v8i{}) - (rank[i] >= dp1 ? v8i{} + dp1 : v8i{});
    rank[i] += shift;
    r0 += shift;
    rem0f[i] = __builtin_convertvector(r0, v8f);
    for (int l = 0; l < N; ++l) {
      rem0_out[l * dp1 + i] = r0[l];
      rank_out[l * dp1 + i] = rank[i][l];
    }
  }
  v8f b[D + 2];
  for (int t = 0; t < D + 2; ++t) b[t] = v8f{};
  for (int i = 0; i <= D; ++i) {
    const v8f v = (elevated[i] - rem0f[i]) * inv_dp1;
    const v8i p = D - rank[i];
    for (int t = 0; t <= D; ++t) b[t] = p == t ? b[t] + v : b[t];
    for (int t = 1; t < D + 2; ++t) b[t] = p + 1 == t ? b[t] - v : b[t];
  }
  b[0] = b[0] + (1.0f + b[D + 1]);
  for (int i = 0; i <= D; ++i)
    for (int l = 0; l < N; ++l) bary_out[l * dp1 + i] = b[i][l];
  return 0;
}

}  // namespace permutohedral
}  // namespace deeplab_caffe
