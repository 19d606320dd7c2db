// CPU mean-field inference for the fully connected CRF (densecrf v2's loop): each iteration starts
// from -unary, subtracts compat_k applied to every kernel's filtered Q, and takes a per-pixel
// softmax.  The lattices are built once by the caller and reused for every iteration.
// The register path's v8sf rows go through slice_accumulate, always inlined: no vector crosses
// a call, so GCC's note that passing one differs between the SIMD clones' ABIs does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "common.h"
#include "permutohedral/crf_profile.h"
#include "permutohedral/crf_threads.h"
#include "permutohedral/lattice_host.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace deeplab_caffe {
namespace permutohedral {

namespace {

#if defined(__GNUC__) && defined(__x86_64__)
#define DC_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DC_SIMD_CLONES
#endif

// One kernel's blurred lattice values and what turns them into a message for the update.
// Pulls the lattice rows a later point will slice from into the cache (first and last line).
inline void prefetch_rows(const float* vals, const int32_t* off, int dp1, int64_t S) {
  for (int j = 0; j < dp1; ++j) {
    const float* r = vals + (int64_t)off[j] * S;
    __builtin_prefetch(r);
    __builtin_prefetch(r + S - 1);
  }
}

struct SliceSource {
  LatticeView L;
  const float* vals;   // (M, S) blurred values
  const float* post;   // (P,) or null
  const float* c;      // (L,) diagonal or (L, L)
  const float* c_pad = nullptr;  // the diagonal padded with zeros to S, or null for a matrix
  bool full;
  float alpha;
};

// In-place softmax of N rows (stride S, L labels, zeros after them, which it keeps), like
// densecrf's expAndNormalize: subtract the max, exponentiate, divide by the sum.  Each row sums
// in label order like the CUDA twin; the N rows' chains interleave so the adds overlap.
template <int N>
__attribute__((always_inline)) inline void softmax_block(float* __restrict__ a, int64_t S,
                                                      int64_t L) {
  float mx[N], s[N];
  for (int r = 0; r < N; ++r) mx[r] = a[r * S];
  for (int64_t l = 1; l < L; ++l)
    for (int r = 0; r < N; ++r) mx[r] = std::max(mx[r], a[r * S + l]);
  for (int r = 0; r < N; ++r) {
    float* __restrict__ row = a + r * S;
    const float m = mx[r];
    // Whole SIMD blocks: the padding lanes get junk here and zeros again below.
    for (int64_t c = 0; c < S; ++c) row[c] = exp_nonpositive(row[c] - m);
    for (int64_t c = L; c < S; ++c) row[c] = 0.0f;
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

constexpr int kBlock = 8;

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
typedef float v8sf __attribute__((vector_size(32), aligned(4)));

template <int NB>
__attribute__((always_inline)) inline void update_rows_reg(
    const SliceSource* ks, int64_t K, const float* __restrict__ NU, int64_t L,
    float* __restrict__ q, int64_t pb, int64_t pe) {
  constexpr int64_t S = NB * kLanes;
  for (int64_t b0 = pb; b0 < pe; b0 += kBlock) {
    const int64_t b1 = std::min(pe, b0 + kBlock);
    for (int64_t p = b0; p < b1; ++p) {
      float* __restrict__ row = q + p * S;
      v8sf a[NB];
      for (int b = 0; b < NB; ++b) a[b] = *(const v8sf*)(NU + p * S + b * kLanes);
      for (int64_t k = 0; k < K; ++k) {
        const SliceSource& src = ks[k];
        const int dp1 = src.L.d + 1;
        const int32_t* off = src.L.offsets + p * dp1;
        const float* wt = src.L.weights + p * dp1;
        if (p + kPrefetchAhead < pe) prefetch_rows(src.vals, off + kPrefetchAhead * dp1, dp1, S);
        v8sf y[NB];
        for (int b = 0; b < NB; ++b) y[b] = v8sf{} ;
        for (int j = 0; j < dp1; ++j) {
          const float* __restrict__ val = src.vals + (int64_t)off[j] * S;
          const float w = wt[j];
          if (L <= 2) {  // the order a constant, so each loop vectorises
            for (int b = 0; b < NB; ++b)
              slice_accumulate(y[b], w, *(const v8sf*)(val + b * kLanes), src.alpha, true);
          } else {
            for (int b = 0; b < NB; ++b)
              slice_accumulate(y[b], w, *(const v8sf*)(val + b * kLanes), src.alpha, false);
          }
        }
        if (src.post) {
          const float sc = src.post[p];
          for (int b = 0; b < NB; ++b) y[b] *= sc;
        }
        for (int b = 0; b < NB; ++b) a[b] -= *(const v8sf*)(src.c_pad + b * kLanes) * y[b];
      }
      for (int b = 0; b < NB; ++b) *(v8sf*)(row + b * kLanes) = a[b];
    }
    if (b1 - b0 == kBlock) softmax_block<kBlock>(q + b0 * S, S, L);
    else for (int64_t p = b0; p < b1; ++p) softmax_block<1>(q + p * S, S, L);
  }
}

DC_SIMD_CLONES void update_rows_r1(const SliceSource* ks, int64_t K, const float* NU, int64_t L,
                                   float* q, int64_t pb, int64_t pe) {
  update_rows_reg<1>(ks, K, NU, L, q, pb, pe);
}
DC_SIMD_CLONES void update_rows_r2(const SliceSource* ks, int64_t K, const float* NU, int64_t L,
                                   float* q, int64_t pb, int64_t pe) {
  update_rows_reg<2>(ks, K, NU, L, q, pb, pe);
}
DC_SIMD_CLONES void update_rows_r3(const SliceSource* ks, int64_t K, const float* NU, int64_t L,
                                   float* q, int64_t pb, int64_t pe) {
  update_rows_reg<3>(ks, K, NU, L, q, pb, pe);
}
DC_SIMD_CLONES void update_rows_r4(const SliceSource* ks, int64_t K, const float* NU, int64_t L,
                                   float* q, int64_t pb, int64_t pe) {
  update_rows_reg<4>(ks, K, NU, L, q, pb, pe);
}

}  // namespace

void fused_update_host(const FusedSources& S, const float* U, int64_t P, int64_t L,
                       int64_t vstride, float* q, int64_t qstride) {
  const int64_t tile = fused_tile(L);
  TORCH_INTERNAL_ASSERT(tile >= 1, "fused_update_host: ", L, " labels do not fit one tile");
  std::vector<float> rows((size_t)(tile * L));
  for (int64_t p0 = 0; p0 < P; p0 += tile) {  // the tiles, in any order (they are independent)
    const int64_t np = std::min(tile, P - p0), n = np * L;
    for (int64_t i = 0; i < n; ++i)
      rows[i] = fused_update_value(S, U, L, vstride, p0 + i / L, i % L);
    for (int64_t r = 0; r < np; ++r) softmax_row(rows.data() + r * L, L);
    for (int64_t i = 0; i < n; ++i) q[(p0 + i / L) * qstride + i % L] = rows[i];
  }
}

// DEEPLAB_CAFFE_CRF_CPU=cuda-twin: the update step runs the CUDA fused kernel's code on the
// host (fused_update_host) instead of update_rows, for diagonal compatibilities; a test checks
// that both give the same bits, which checks the CUDA kernel's maths without a GPU.
static bool use_cuda_twin_update() {
  const char* env = std::getenv("DEEPLAB_CAFFE_CRF_CPU");
  const std::string s = env ? env : "";
  DC_CHECK_ARG(s.empty() || s == "cuda-twin",
               "DEEPLAB_CAFFE_CRF_CPU must be unset or cuda-twin, got '", s, "'");
  return s == "cuda-twin";
}

at::Tensor meanfield_cpu(const at::Tensor& unary_in, const std::optional<at::Tensor>& q_init,
                         at::TensorList offsets, at::TensorList weights, at::TensorList neighbors,
                         at::TensorList splat_ptr, at::TensorList splat_src,
                         at::TensorList norm_before, at::TensorList norm_after,
                         at::TensorList compat, int64_t max_iter) {
  const int64_t K = check_meanfield(unary_in, q_init, offsets, weights, neighbors, splat_ptr,
                                    splat_src, norm_before, norm_after, compat, max_iter);
  const at::Tensor unary = unary_in.contiguous();
  const int64_t P = unary.size(0), L = unary.size(1);
  at::Tensor Q = q_init.has_value() ? q_init->contiguous().clone() : at::empty_like(unary);
  if (P == 0) return Q;
  CrfThreadsScope threads;
  MeanfieldProfile profile(P, L, K, max_iter);
  const float* U = unary.data_ptr<float>();
  const int64_t S = padded_stride(L);
  const int64_t grain = std::max<int64_t>(1, 4096 / S);
  // Q is kept padded to whole SIMD blocks (zeros after the L labels) for the filter loops.
  std::vector<float> q((size_t)P * S, 0.0f);
  if (q_init.has_value() && !(K == 0 && max_iter > 0)) {
    const float* qi = Q.data_ptr<float>();
    crf_parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) std::copy(qi + p * L, qi + (p + 1) * L, &q[p * S]);
    });
  } else {
    crf_parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
      softmax_neg_rows(U, L, q.data(), S, b, e);
    });
  }
  std::vector<LatticeView> views;
  for (int64_t k = 0; k < K; ++k) {
    views.push_back(lattice_view(offsets[k], weights[k], neighbors[k], splat_ptr[k], splat_src[k]));
  }
  // One pair of lattice buffers per kernel: every kernel splats the same Q, and the slices,
  // the update and the softmax then run in a single pass over the points.
  std::vector<std::vector<float>> bufs((size_t)(2 * K));
  for (int64_t k = 0; k < K; ++k) {
    bufs[2 * k].resize((size_t)views[k].M * S);
    bufs[2 * k + 1].resize((size_t)views[k].M * S);
  }
  std::vector<SliceSource> srcs((size_t)K);
  std::vector<std::vector<float>> c_pads((size_t)K);
  for (int64_t k = 0; k < K; ++k) {
    SliceSource& src = srcs[k];
    src.L = views[k];
    src.post = norm_after[k].numel() ? norm_after[k].data_ptr<float>() : nullptr;
    src.c = compat[k].data_ptr<float>();
    src.full = compat[k].dim() == 2;
    if (!src.full) {
      c_pads[k].assign((size_t)S, 0.0f);
      std::copy(src.c, src.c + L, c_pads[k].begin());
      src.c_pad = c_pads[k].data();
    }
    src.alpha = slice_alpha(views[k].d);
  }
  std::vector<SplatPlan> plans((size_t)K);
  for (int64_t k = 0; k < K && max_iter > 0; ++k) plans[k] = plan_splat(views[k]);
  bool any_full = false;
  for (int64_t k = 0; k < K; ++k) any_full = any_full || srcs[k].full;
  const int reg_blocks = any_full || S > 4 * kLanes || S == 1 ? 0 : (int)(S / kLanes);
  // -unary padded like Q, for the register path's whole-block loads.
  std::vector<float> neg_u;
  if (reg_blocks && K > 0 && max_iter > 0) {
    neg_u.assign((size_t)P * S, 0.0f);
    crf_parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p)
        for (int64_t l = 0; l < L; ++l) neg_u[p * S + l] = -U[p * L + l];
    });
  }
  const bool twin = use_cuda_twin_update() && can_fuse(K, !any_full, L);
  for (int64_t it = 0; K > 0 && it < max_iter; ++it) {
    if (it > 0) threads.resample();  // the machine's load changes while we run
    for (int64_t k = 0; k < K; ++k) {
      const float* pre = norm_before[k].numel() ? norm_before[k].data_ptr<float>() : nullptr;
      srcs[k].vals = splat_blur_cpu(views[k], q.data(), S, pre, false, bufs[2 * k].data(),
                                    bufs[2 * k + 1].data(), plans[k]);
    }
    PhaseLap phase(&PhaseTimes::update);
    if (twin) {
      FusedSources F;
      F.K = (int)K;
      for (int64_t k = 0; k < K; ++k) {
        F.lat[k] = srcs[k].L;
        F.vals[k] = srcs[k].vals;
        F.post[k] = srcs[k].post;
        F.c[k] = srcs[k].c;
        F.alpha[k] = srcs[k].alpha;
      }
      fused_update_host(F, U, P, L, S, q.data(), S);
      continue;
    }
    crf_parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
      switch (reg_blocks) {
        case 1: update_rows_r1(srcs.data(), K, neg_u.data(), L, q.data(), b, e); break;
        case 2: update_rows_r2(srcs.data(), K, neg_u.data(), L, q.data(), b, e); break;
        case 3: update_rows_r3(srcs.data(), K, neg_u.data(), L, q.data(), b, e); break;
        case 4: update_rows_r4(srcs.data(), K, neg_u.data(), L, q.data(), b, e); break;
        default: {
          std::vector<float> y((size_t)S);
          update_rows(srcs.data(), K, U, L, S, q.data(), y.data(), b, e);
        }
      }
    });
  }
  float* qo = Q.data_ptr<float>();
  crf_parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) std::copy(&q[p * S], &q[p * S] + L, qo + p * L);
  });
  return Q;
}

}  // namespace permutohedral
}  // namespace deeplab_caffe

TORCH_LIBRARY_IMPL(deeplab_caffe, CPU, m) {
  m.impl("dense_crf_meanfield", &deeplab_caffe::permutohedral::meanfield_cpu);
}
