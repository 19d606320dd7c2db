// Permutohedral lattice (Adams, Baek, Davis 2010) as used by Krähenbühl's densecrf: the per-point
// maths shared by the CPU and CUDA builders, so both place every pixel on the same simplex with the
// same barycentric weights.
//
// A lattice over P points with d-dimensional features is kept as plain tensors, which is what the
// ops exchange with Python and what lets a lattice built once serve every mean-field iteration:
//   offsets        (P, d+1) int32    vertex of each of the point's d+1 simplex corners
//   weights        (P, d+1) float32  barycentric weights (>= 0, sum 1)
//   blur_neighbors (d+1, M, 2) int32 the two neighbours of each vertex along each axis, -1 = absent
//   splat_ptr      (M+1,) int32      CSR rows: the (point, corner) entries that splat into a vertex
//   splat_src      (P*(d+1),) int32  flat entry index p*(d+1)+j, ascending within each vertex, so a
//                                    gather-splat sums in the CPU splat's order (splat_half)
#pragma once

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define DC_HD __host__ __device__ __forceinline__
#define DC_HD_VEC DC_HD
#else
#define DC_HD inline
// Helpers the CPU also calls on GCC vector types: always inlined, so no vector crosses a call
// (whose ABI would depend on the SIMD clone).
#define DC_HD_VEC inline __attribute__((always_inline))
#endif

namespace deeplab_caffe {
namespace permutohedral {

constexpr int kMaxDim = 16;  // feature dimensions d; keys carry d+1 ints (image id first)
// Elevated coordinates become int32 keys; beyond this a feature is too large for its std.
constexpr float kMaxCoord = 1.0e9f;

// Float ops that nvcc may not contract into FMAs, so CUDA rounds exactly like the CPU twin (and like
// densecrf's SSE2 path, which has no FMA).
#if defined(__CUDA_ARCH__)
DC_HD float mul_rn(float a, float b) { return __fmul_rn(a, b); }
DC_HD float add_rn(float a, float b) { return __fadd_rn(a, b); }
DC_HD float sub_rn(float a, float b) { return __fsub_rn(a, b); }
DC_HD float div_rn(float a, float b) { return __fdiv_rn(a, b); }
DC_HD float round_even(float a) { return rintf(a); }
#else
// Templates on the host so the CPU's SIMD rows (GCC vector types) share slice_accumulate.
template <typename A, typename B>
DC_HD_VEC auto mul_rn(const A& a, const B& b) -> decltype(a * b) { return a * b; }
template <typename A, typename B>
DC_HD_VEC auto add_rn(const A& a, const B& b) -> decltype(a + b) { return a + b; }
DC_HD float sub_rn(float a, float b) { return a - b; }
DC_HD float div_rn(float a, float b) { return a / b; }
// Nearest, ties to even (the default rounding mode), without a libm call: adding 1.5 * 2^23 rounds
// any |a| < 2^22; larger floats are integers or halves only near 2^22..2^23, left to nearbyint.
DC_HD float round_even(float a) {
  if (std::fabs(a) < 4194304.0f) {
    const float t = a + 12582912.0f;  // IEEE: the compiler may not fold (a + c) - c
    return t - 12582912.0f;
  }
  return std::nearbyint(a);
}
#endif

// A lattice's tensors as raw pointers, for the kernels of both backends.
struct LatticeView {
  int64_t P = 0, M = 0;
  int d = 0;
  const int32_t* offsets = nullptr;    // (P, d+1)
  const float* weights = nullptr;      // (P, d+1)
  const int32_t* neighbors = nullptr;  // (d+1, M, 2)
  const int32_t* splat_ptr = nullptr;  // (M+1)
  const int32_t* splat_src = nullptr;  // (P*(d+1))
};

// The splat splits the points in two fixed halves [0, half) and [half, P), sums each half in
// point order starting from 0, then adds the second half's sum to the first's: the CPU so that
// two threads splat at once whatever the thread count, the CUDA gather to give the CPU's bits.
// (Neither half's sum is ever -0, so where only one half reaches a vertex, adding the other's
// 0 changes nothing.)
constexpr int64_t kSplatHalvesMin = 16384;
DC_HD int64_t splat_half(int64_t P) { return P >= kSplatHalvesMin ? P / 2 : P; }

// y += one simplex corner's term of the slice: densecrf's scalar path (value_size <= 2) rounds
// (w*v)*alpha, its SSE path (w*alpha)*v.  T: float, or a GCC float vector on the host (by
// reference: no vector crosses a call).
template <typename T>
DC_HD_VEC void slice_accumulate(T& y, float w, const T& val, float alpha, bool scalar_order) {
  y = add_rn(y, scalar_order ? mul_rn(mul_rn(w, val), alpha) : mul_rn(mul_rn(w, alpha), val));
}

// densecrf's "magic scaling constant" applied at slice time.
inline float slice_alpha(int d) { return 1.0f / (1.0f + powf(2.0f, (float)-d)); }

// Diagonal of the embedding E (p.5 of Adams et al.) times the filter's expected inverse std
// sqrt(2/3)(d+1), rounded to float exactly as densecrf computes it.
inline void scale_factors(int d, float* scale) {
  const float inv_std_dev = (float)(std::sqrt(2.0 / 3.0) * (d + 1));
  for (int i = 0; i < d; ++i)
    scale[i] = (float)(1.0 / std::sqrt((double)(i + 2) * (i + 1)) * inv_std_dev);
}

// Places one point: the nearest remainder-0 lattice point rem0 (d+1 ints, already corrected so that
// the point lies in the simplex rem0 + canonical[rank]), the rank of each coordinate, and the d+1
// barycentric weights.  Returns false when a coordinate is too large for an int32 key.
// D > 0 fixes d at compile time (the CPU builder's d = 2 and d = 5 loops then unroll); D = 0
// takes it from d_in.  Same operations either way.
template <int D = 0>
DC_HD bool embed_point(const float* f, int d_in, const float* scale, int* rem0, int* rank,
                       float* bary) {
  const int d = D > 0 ? D : d_in;
  float elevated[kMaxDim + 1], rem0f[kMaxDim + 1], b[kMaxDim + 2];
  const float inv_dp1 = 1.0f / (float)(d + 1);
  const float dp1 = (float)(d + 1);
  float sm = 0.0f;
  for (int j = d; j > 0; --j) {
    const float cf = mul_rn(f[j - 1], scale[j - 1]);
    elevated[j] = sub_rn(sm, mul_rn((float)j, cf));
    sm = add_rn(sm, cf);
  }
  elevated[0] = sm;
  float sum = 0.0f;
  for (int i = 0; i <= d; ++i) {
    const float v = round_even(mul_rn(inv_dp1, elevated[i]));
    if (!(fabsf(v) < kMaxCoord / dp1)) return false;  // also catches NaN
    rem0f[i] = mul_rn(v, dp1);
    sum = add_rn(sum, v);
  }
  for (int i = 0; i <= d; ++i) rank[i] = 0;
  for (int i = 0; i < d; ++i) {
    const float di = sub_rn(elevated[i], rem0f[i]);
    for (int j = i + 1; j <= d; ++j) {
      const float dj = sub_rn(elevated[j], rem0f[j]);
      if (di < dj) rank[i] += 1; else rank[j] += 1;
    }
  }
  const int isum = (int)sum;
  for (int i = 0; i <= d; ++i) {
    rank[i] += isum;
    int r0 = (int)rem0f[i];
    if (rank[i] < 0) { rank[i] += d + 1; r0 += d + 1; }
    else if (rank[i] >= d + 1) { rank[i] -= d + 1; r0 -= d + 1; }
    rem0[i] = r0;
    rem0f[i] = (float)r0;
  }
  for (int i = 0; i < d + 2; ++i) b[i] = 0.0f;
  for (int i = 0; i <= d; ++i) {
    const float v = mul_rn(sub_rn(elevated[i], rem0f[i]), inv_dp1);
    const int p = d - rank[i];
    b[p] = add_rn(b[p], v);
    b[p + 1] = sub_rn(b[p + 1], v);
  }
  b[0] = add_rn(b[0], add_rn(1.0f, b[d + 1]));
  for (int i = 0; i <= d; ++i) bary[i] = b[i];
  return true;
}

// Key of the simplex corner with the given remainder: the first d coordinates (the last one is
// implied by the zero sum) after the image id.
template <int D = 0>
DC_HD void corner_key(const int* rem0, const int* rank, int d_in, int remainder, int image_id,
                      int32_t* key) {
  const int d = D > 0 ? D : d_in;
  key[0] = image_id;
  for (int i = 0; i < d; ++i)
    key[i + 1] = rem0[i] + (rank[i] <= d - remainder ? remainder : remainder - (d + 1));
}

// 64-bit hash of a key of n ints: each coordinate times its own odd constant (independent
// products, so no long dependency chain), then murmur3's 64-bit finaliser to spread the bits
// over the low ones the power-of-two table uses.  No int16 truncation, so tiny stds or huge
// images cannot alias distinct vertices; equality is still checked on the full key.
DC_HD uint64_t hash_coef(int i) {
  // 17 random odd constants: a common factor would let small key differences cancel.
  switch (i) {
    case 0: return 0xBB91433A6AA79987ull;
    case 1: return 0xD1F6F86C029A7245ull;
    case 2: return 0xCD8778E7D340BBCDull;
    case 3: return 0xDAEA58BA4C73A943ull;
    case 4: return 0xEE8971105E503A67ull;
    case 5: return 0x452EC40A3193CA55ull;
    case 6: return 0x6FACAA5090E5E945ull;
    case 7: return 0x5F811CB929645F8Bull;
    case 8: return 0xDFC9E3B11FCFF455ull;
    case 9: return 0x42D6CB5C6ED4E94Bull;
    case 10: return 0xA091250E8FE46025ull;
    case 11: return 0x9C9CEA0C2CA1C789ull;
    case 12: return 0x2FD2B7A48D9FE5B9ull;
    case 13: return 0xBCF74D7A5ADAD121ull;
    case 14: return 0xBB9D58E4F543BBCFull;
    case 15: return 0x87F26AEE175F0CD3ull;
    default: return 0xBC428D42FA882693ull;
  }
}

DC_HD uint64_t hash_key(const int32_t* key, int n) {
  uint64_t h = 0;
  for (int i = 0; i < n; ++i)
    h += (uint64_t)(uint32_t)key[i] * hash_coef(i);
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return h;
}

// Without an early exit: one branch on the result instead of one per coordinate, whose outcome
// (a neighbouring pixel's corner, the same or not) no predictor can learn.
DC_HD bool keys_equal(const int32_t* a, const int32_t* b, int n) {
  int32_t diff = 0;
  for (int i = 0; i < n; ++i) diff |= a[i] ^ b[i];
  return diff == 0;
}

// Neighbour keys along axis j (0..d): n1 has every stored coordinate -1 except j, which gets +d;
// n2 is the mirror.  For j == d only the implied coordinate moves, so all stored ones shift.
DC_HD void neighbor_keys(const int32_t* key, int d, int axis, int32_t* n1, int32_t* n2) {
  n1[0] = n2[0] = key[0];
  for (int k = 0; k < d; ++k) {
    n1[k + 1] = key[k + 1] - 1;
    n2[k + 1] = key[k + 1] + 1;
  }
  if (axis < d) {
    n1[axis + 1] = key[axis + 1] + d;
    n2[axis + 1] = key[axis + 1] - d;
  }
}

// exp for x <= 0 (a softmax after subtracting the max): Cody-Waite reduction x = n ln2 + r and
// Cephes' degree-6 polynomial, ~1 ulp like the vectorised exp densecrf gets from Eigen; written so
// the CPU compiler vectorises it (std::exp does not) and both backends round identically.
// Inputs below -87 give about 2^-126 instead of a denormal, which no softmax can tell apart.
DC_HD float exp_nonpositive(float x) {
#if defined(__CUDA_ARCH__)
  x = fmaxf(x, -87.0f);
#else
  // max(x, -87) for x <= 0 on the bit patterns (a float compare is a branch to gcc, trapping
  // math, and would stop the loop from vectorising).  Setting the sign bit maps +0 to -0; among
  // negative floats a larger magnitude is a larger signed pattern.
  int32_t xi, lo;
  const float lim = -87.0f;
  std::memcpy(&xi, &x, sizeof(x));
  std::memcpy(&lo, &lim, sizeof(lim));
  xi |= INT32_MIN;
  xi = xi < lo ? xi : lo;
  std::memcpy(&x, &xi, sizeof(x));
#endif
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = sub_rn(add_rn(mul_rn(x, 1.44269504088896341f), shifter), shifter);
  float r = sub_rn(x, mul_rn(n, 0.693359375f));
  r = sub_rn(r, mul_rn(n, -2.12194440e-4f));
  float y = 1.9875691500e-4f;
  y = add_rn(mul_rn(y, r), 1.3981999507e-3f);
  y = add_rn(mul_rn(y, r), 8.3334519073e-3f);
  y = add_rn(mul_rn(y, r), 4.1665795894e-2f);
  y = add_rn(mul_rn(y, r), 1.6666665459e-1f);
  y = add_rn(mul_rn(y, r), 5.0000001201e-1f);
  y = add_rn(add_rn(mul_rn(mul_rn(y, r), r), r), 1.0f);
  const int32_t bits = ((int32_t)n + 127) << 23;
#if defined(__CUDA_ARCH__) && defined(__CUDACC__)  // nvcc (HIP-CPU has no __int_as_float)
  const float scale = __int_as_float(bits);
#else
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
#endif
  return mul_rn(y, scale);
}

}  // namespace permutohedral
}  // namespace deeplab_caffe
