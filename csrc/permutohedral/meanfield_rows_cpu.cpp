// The CPU mean field's per-point kernels (meanfield_rows_cpu.h).
// The register path's v8sf rows go through slice_accumulate, always inlined: no vector crosses
// a call, so GCC's note that passing one differs between the SIMD clones' ABIs does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "permutohedral/meanfield_rows_cpu.h"
#include "permutohedral/lattice_host.h"

#include <algorithm>

namespace deeplab_caffe {
namespace permutohedral {

// Pulls the lattice rows a later point will slice from into the cache (first and last line).
inline void prefetch_rows(const float* vals, const int32_t* off, int dp1, int64_t S) {
  for (int j = 0; j < dp1; ++j) {
    const float* r = vals + (int64_t)off[j] * S;
    __builtin_prefetch(r);
    __builtin_prefetch(r + S - 1);
  }
}

typedef float v8sf __attribute__((vector_size(32), aligned(4)));
typedef int32_t v8si __attribute__((vector_size(32), aligned(4)));

// The lanes of a row's SIMD block b that hold labels (all ones) and those that pad it (zero).
__attribute__((always_inline)) inline v8si label_lanes(int64_t b, int64_t L) {
  const v8si lane = {0, 1, 2, 3, 4, 5, 6, 7};
  return lane < (int32_t)(L - b * kLanes);
}

// The largest of a row's L labels (stride S: 1, or whole SIMD blocks), by blocks with the
// padding lanes at -inf: the value densecrf's label-order maximum has (a maximum does not depend
// on the order; at most the sign of a zero differs, which x - max and exp_nonpositive's sign bit
// make invisible).
__attribute__((always_inline)) inline float row_max(const float* row, int64_t S, int64_t L) {
  if (S == 1) return row[0];
  const v8sf ninf = v8sf{} - __builtin_inff();
  v8sf m = ninf;
  for (int64_t b = 0; b * kLanes < S; ++b) {
    const v8sf v = *(const v8sf*)(row + b * kLanes);
    const v8sf x = label_lanes(b, L) ? v : ninf;
    m = m > x ? m : x;
  }
  v8sf t = __builtin_shufflevector(m, m, 4, 5, 6, 7, 0, 1, 2, 3);
  m = m > t ? m : t;
  t = __builtin_shufflevector(m, m, 2, 3, 0, 1, 6, 7, 4, 5);
  m = m > t ? m : t;
  t = __builtin_shufflevector(m, m, 1, 0, 3, 2, 5, 4, 7, 6);
  m = m > t ? m : t;
  return m[0];
}

// In-place softmax of N rows (stride S, L labels, zeros after them), like densecrf's
// expAndNormalize: subtract the max, exponentiate, divide by the sum.  Each row sums in label
// order like the CUDA twin; the N rows' chains interleave so the adds overlap.  The padding
// lanes are zeroed by a mask, whole vectors: a vector load over scalar stores (the division's,
// or the next splat's) stalls the pipeline.
template <int N>
__attribute__((always_inline)) inline void softmax_block(float* __restrict__ a, int64_t S,
                                                      int64_t L) {
  float mx[N], s[N];
  for (int r = 0; r < N; ++r) mx[r] = row_max(a + r * S, S, L);
  for (int r = 0; r < N; ++r) {
    float* __restrict__ row = a + r * S;
    const float m = mx[r];
    for (int64_t c = 0; c < S; ++c) row[c] = exp_nonpositive(row[c] - m);
    for (int64_t b = L / kLanes; S > 1 && b * kLanes < S; ++b) {
      v8sf& v = *(v8sf*)(row + b * kLanes);
      v = (v8sf)((v8si)v & label_lanes(b, L));
    }
  }
  for (int r = 0; r < N; ++r) s[r] = 0.0f;
  for (int64_t l = 0; l < L; ++l)
    for (int r = 0; r < N; ++r) s[r] += a[r * S + l];
  for (int r = 0; r < N; ++r) {
    float* __restrict__ row = a + r * S;
    const float sum = s[r];
    for (int64_t c = 0; c < S; ++c) row[c] = row[c] / sum;
  }
}


// Q rows (stride S) = softmax(-U rows (stride L)): the rows of -U copied in, then softmax_block.
DC_SIMD_CLONES void softmax_neg_rows(const float* __restrict__ U, int64_t L, float* __restrict__ q,
                                     int64_t S, int64_t pb, int64_t pe) {
  for (int64_t b0 = pb; b0 < pe; b0 += kBlock) {
    const int64_t b1 = std::min(pe, b0 + kBlock);
    for (int64_t p = b0; p < b1; ++p)
      for (int64_t l = 0; l < L; ++l) q[p * S + l] = -U[p * L + l];
    if (b1 - b0 == kBlock) softmax_block<kBlock>(q + b0 * S, S, L);
    else for (int64_t p = b0; p < b1; ++p) softmax_block<1>(q + p * S, S, L);
  }
}

DC_SIMD_CLONES void softmax_rows(const float* __restrict__ NU, int64_t L, float* __restrict__ q,
                                 int64_t S, int64_t pb, int64_t pe) {
  for (int64_t b0 = pb; b0 < pe; b0 += kBlock) {
    const int64_t b1 = std::min(pe, b0 + kBlock);
    std::copy(NU + b0 * S, NU + b1 * S, q + b0 * S);
    if (b1 - b0 == kBlock) softmax_block<kBlock>(q + b0 * S, S, L);
    else for (int64_t p = b0; p < b1; ++p) softmax_block<1>(q + p * S, S, L);
  }
}

// The end of one iteration, fused per point so the message never goes to memory: each kernel's
// slice (as filter_values_cpu's slice_rows: y = sum_j w_j v_j alpha, times post), the update
// a = -U - sum_k compat_k . y_k in kernel order, and the softmax of a written back into the Q row
// (every splat of this iteration has read Q already).  Same operations in the same order as the
// unfused loop, so the same rounding.  y: S floats of scratch.
// Points go in blocks of kBlock, whose softmaxes interleave.
DC_SIMD_CLONES void update_rows(const SliceSource* ks, int64_t K, const float* __restrict__ U,
                                int64_t L, int64_t S, float* __restrict__ q,
                                float* __restrict__ y, int64_t pb, int64_t pe) {
  for (int64_t b0 = pb; b0 < pe; b0 += kBlock) {
    const int64_t b1 = std::min(pe, b0 + kBlock);
    for (int64_t p = b0; p < b1; ++p) {
      float* __restrict__ a = q + p * S;
      for (int64_t l = 0; l < L; ++l) a[l] = -U[p * L + l];
      for (int64_t k = 0; k < K; ++k) {
        const SliceSource& src = ks[k];
        const int dp1 = src.L.d + 1;
        const int32_t* off = src.L.offsets + p * dp1;
        const float* wt = src.L.weights + p * dp1;
        if (p + kPrefetchAhead < pe) prefetch_rows(src.vals, off + kPrefetchAhead * dp1, dp1, S);
        for (int64_t c = 0; c < S; ++c) y[c] = 0.0f;
        for (int j = 0; j < dp1; ++j) {
          const float* __restrict__ val = src.vals + (int64_t)off[j] * S;
          const float w = wt[j];
          if (S == 1) {  // one label: rows of one unpadded value
            slice_accumulate(y[0], w, val[0], src.alpha, true);
          } else if (L <= 2) {  // the order a constant, so each loop vectorises
            for (int64_t c0 = 0; c0 < S; c0 += kLanes)
              for (int c = 0; c < kLanes; ++c)
                slice_accumulate(y[c0 + c], w, val[c0 + c], src.alpha, true);
          } else {
            for (int64_t c0 = 0; c0 < S; c0 += kLanes)
              for (int c = 0; c < kLanes; ++c)
                slice_accumulate(y[c0 + c], w, val[c0 + c], src.alpha, false);
          }
        }
        if (src.post) {
          const float sc = src.post[p];
          for (int64_t c = 0; c < S; ++c) y[c] *= sc;
        }
        if (src.full) {
          for (int64_t l = 0; l < L; ++l) {
            float s = 0.0f;
            for (int64_t j = 0; j < L; ++j) s += src.c[l * L + j] * y[j];
            a[l] -= s;
          }
        } else {
          for (int64_t l = 0; l < L; ++l) a[l] -= src.c[l] * y[l];
        }
      }
    }
    if (b1 - b0 == kBlock) softmax_block<kBlock>(q + b0 * S, S, L);
    else for (int64_t p = b0; p < b1; ++p) softmax_block<1>(q + p * S, S, L);
  }
}


// update_rows for Potts/diagonal kernels and rows of NB SIMD blocks (L <= 32), NU the padded
// -unary rows: the same operations in the same order, with the row's update and slice sums held
// in registers instead of going through memory once per simplex corner.
// tg (K targets, or null): the new rows go to `scratch` (kBlock rows) instead of Q and are
// splatted from there for the next iteration, each kernel's in point order as splat_points
// does it: Q then never goes to memory and the splat reads no point's lattice row twice.
// a -= compat . (post * slice) of one kernel at point p, for rows of NB SIMD blocks; DP1 > 0
// fixes the simplex's corner count at compile time (the same operations either way).
template <int NB, int DP1>
__attribute__((always_inline)) inline void slice_update(const SliceSource& src, int64_t L,
                                                        int64_t p, int64_t pe, v8sf* a) {
  constexpr int64_t S = NB * kLanes;
  const int dp1 = DP1 > 0 ? DP1 : src.L.d + 1;
  const int32_t* off = src.L.offsets + p * dp1;
  const float* wt = src.L.weights + p * dp1;
  const float* __restrict__ vals = src.vals;
  const float alpha = src.alpha;
  if (p + kPrefetchAhead < pe) prefetch_rows(vals, off + kPrefetchAhead * dp1, dp1, S);
  v8sf y[NB];
  for (int b = 0; b < NB; ++b) y[b] = v8sf{};
  for (int j = 0; j < dp1; ++j) {
    const float* __restrict__ val = vals + (int64_t)off[j] * S;
    const float w = wt[j];
    if (L <= 2) {  // the order a constant, so each loop vectorises
      for (int b = 0; b < NB; ++b)
        slice_accumulate(y[b], w, *(const v8sf*)(val + b * kLanes), alpha, true);
    } else {
      for (int b = 0; b < NB; ++b)
        slice_accumulate(y[b], w, *(const v8sf*)(val + b * kLanes), alpha, false);
    }
  }
  if (src.post) {
    const float sc = src.post[p];
    for (int b = 0; b < NB; ++b) y[b] *= sc;
  }
  for (int b = 0; b < NB; ++b) a[b] -= *(const v8sf*)(src.c_pad + b * kLanes) * y[b];
}

// The splat of the block's new rows [b0, b1) into one kernel's target, as splat_points does it,
// with the target's next first-touch row in a local (a register) for the block.
template <int NB, int DP1>
__attribute__((always_inline)) inline void splat_block(const LatticeView& lat, SplatTarget& t,
                                                       const float* __restrict__ rows,
                                                       int64_t b0, int64_t b1, int64_t pe) {
  constexpr int64_t S = NB * kLanes;
  float* const out_new = t.out_new;
  float* const out_old = t.out_old;
  const int64_t new_base = t.new_base;
  int64_t next = t.next;
  for (int64_t p = b0; p < b1; ++p) {
    if (p + kBlock < pe) prefetch_corner_rows(lat, p + kBlock, S, out_new, new_base, out_old);
    v8sf x[NB];
    for (int b = 0; b < NB; ++b) x[b] = *(const v8sf*)(rows + (p - b0) * S + b * kLanes);
    if (t.pre) {
      const float sc = t.pre[p];
      for (int b = 0; b < NB; ++b) x[b] = x[b] * sc;
    }
    splat_point<DP1>(lat, p, S, out_new, new_base, out_old, next,
                     [&](float* __restrict__ acc, float w, bool first) {
                       for (int b = 0; b < NB; ++b) {
                         v8sf& r = *(v8sf*)(acc + b * kLanes);
                         r = first ? v8sf{} + w * x[b] : r + w * x[b];
                       }
                     });
  }
  t.next = next;
}

template <int NB>
__attribute__((always_inline)) inline void update_rows_reg(
    const SliceSource* ks, int64_t K, const float* __restrict__ NU, int64_t L,
    float* __restrict__ q, int64_t pb, int64_t pe, SplatTarget* tg, float* __restrict__ scratch) {
  constexpr int64_t S = NB * kLanes;
  for (int64_t b0 = pb; b0 < pe; b0 += kBlock) {
    const int64_t b1 = std::min(pe, b0 + kBlock);
    float* __restrict__ rows = tg ? scratch : q + b0 * S;  // the block's first row
    for (int64_t p = b0; p < b1; ++p) {
      float* __restrict__ row = rows + (p - b0) * S;
      v8sf a[NB];
      for (int b = 0; b < NB; ++b) a[b] = *(const v8sf*)(NU + p * S + b * kLanes);
      for (int64_t k = 0; k < K; ++k) {
        switch (ks[k].L.d + 1) {  // the spatial and bilateral kernels' corners unrolled
          case 3: slice_update<NB, 3>(ks[k], L, p, pe, a); break;
          case 6: slice_update<NB, 6>(ks[k], L, p, pe, a); break;
          default: slice_update<NB, 0>(ks[k], L, p, pe, a);
        }
      }
      for (int b = 0; b < NB; ++b) *(v8sf*)(row + b * kLanes) = a[b];
    }
    if (b1 - b0 == kBlock) softmax_block<kBlock>(rows, S, L);
    else for (int64_t r = 0; r < b1 - b0; ++r) softmax_block<1>(rows + r * S, S, L);
    if (!tg) continue;
    for (int64_t k = 0; k < K; ++k) {
      switch (ks[k].L.d + 1) {
        case 3: splat_block<NB, 3>(ks[k].L, tg[k], rows, b0, b1, pe); break;
        case 6: splat_block<NB, 6>(ks[k].L, tg[k], rows, b0, b1, pe); break;
        default: splat_block<NB, 0>(ks[k].L, tg[k], rows, b0, b1, pe);
      }
    }
  }
}

#define DC_UPDATE_ROWS_REG(NB)                                                                  \
  DC_SIMD_CLONES void update_rows_r##NB(const SliceSource* ks, int64_t K, const float* NU,      \
                                        int64_t L, float* q, int64_t pb, int64_t pe,            \
                                        SplatTarget* tg, float* scratch) {                      \
    update_rows_reg<NB>(ks, K, NU, L, q, pb, pe, tg, scratch);                                  \
  }
DC_UPDATE_ROWS_REG(1)
DC_UPDATE_ROWS_REG(2)
DC_UPDATE_ROWS_REG(3)
DC_UPDATE_ROWS_REG(4)
#undef DC_UPDATE_ROWS_REG

// update_rows_reg for rows of `blocks` SIMD blocks (1..4).
void update_rows_blocks(int blocks, const SliceSource* ks, int64_t K, const float* NU, int64_t L,
                        float* q, int64_t pb, int64_t pe, SplatTarget* tg, float* scratch) {
  switch (blocks) {
    case 1: update_rows_r1(ks, K, NU, L, q, pb, pe, tg, scratch); break;
    case 2: update_rows_r2(ks, K, NU, L, q, pb, pe, tg, scratch); break;
    case 3: update_rows_r3(ks, K, NU, L, q, pb, pe, tg, scratch); break;
    default: update_rows_r4(ks, K, NU, L, q, pb, pe, tg, scratch);
  }
}

// An 8 x 8 block of floats transposed in registers (the unpack / shuffle / lane-swap steps of
// the usual AVX transpose, written as GCC shuffles).
__attribute__((always_inline)) inline void transpose8(v8sf* r) {
  v8sf t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4)
    for (int j = 0; j < 2; ++j) {
      u[i + j] = __builtin_shufflevector(t[i + j], t[i + j + 2], 0, 1, 8, 9, 4, 5, 12, 13);
      u[i + j + 2] = __builtin_shufflevector(t[i + j], t[i + j + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    }
  // u[0] = rows 0-3 column 0 | rows 0-3 column 4 (per 128-bit half); u[2] column 1, u[1] column
  // 2, u[3] column 3 (and u[4..7] the same for rows 4-7).
  const int order[4] = {0, 2, 1, 3};
  for (int c = 0; c < 4; ++c) {
    r[c] = __builtin_shufflevector(u[order[c]], u[4 + order[c]], 0, 1, 2, 3, 8, 9, 10, 11);
    r[c + 4] = __builtin_shufflevector(u[order[c]], u[4 + order[c]], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

DC_SIMD_CLONES void neg_rows_from_labels_first(const float* __restrict__ Ut, int64_t P,
                                               int64_t L, float* __restrict__ nu, int64_t S,
                                               int64_t pb, int64_t pe) {
  int64_t p0 = pb;
  for (; p0 + 8 <= pe; p0 += 8)
    for (int64_t l0 = 0; l0 < S; l0 += kLanes) {
      v8sf r[8];
      for (int i = 0; i < 8; ++i)  // label l0 + i at points p0..p0+7; zeros past the labels
        r[i] = l0 + i < L ? -*(const v8sf*)(Ut + (l0 + i) * P + p0) : v8sf{};
      transpose8(r);
      for (int i = 0; i < 8; ++i) *(v8sf*)(nu + (p0 + i) * S + l0) = r[i];
    }
  for (int64_t p = p0; p < pe; ++p) {
    for (int64_t l = 0; l < L; ++l) nu[p * S + l] = -Ut[l * P + p];
    for (int64_t l = L; l < S; ++l) nu[p * S + l] = 0.0f;
  }
}

DC_SIMD_CLONES void rows_to_labels_first(const float* __restrict__ q, int64_t S, int64_t L,
                                         float* __restrict__ Qt, int64_t P, int64_t pb,
                                         int64_t pe) {
  int64_t p0 = pb;
  if (S % kLanes == 0)
    for (; p0 + 8 <= pe; p0 += 8)
      for (int64_t l0 = 0; l0 < L; l0 += kLanes) {
        v8sf r[8];
        for (int i = 0; i < 8; ++i) r[i] = *(const v8sf*)(q + (p0 + i) * S + l0);
        transpose8(r);  // r[i]: label l0 + i at points p0..p0+7
        for (int i = 0; i < 8 && l0 + i < L; ++i) *(v8sf*)(Qt + (l0 + i) * P + p0) = r[i];
      }
  for (int64_t p = p0; p < pe; ++p)
    for (int64_t l = 0; l < L; ++l) Qt[l * P + p] = q[p * S + l];
}

}  // namespace permutohedral
}  // namespace deeplab_caffe
