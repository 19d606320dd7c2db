// CPU mean-field inference for the fully connected CRF (densecrf v2's loop): each iteration starts
// from -unary, subtracts compat_k applied to every kernel's filtered Q, and takes a per-pixel
// softmax.  The lattices are built once by the caller and reused for every iteration.
#include "common.h"
#include "permutohedral/lattice_host.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace deeplab_caffe {
namespace permutohedral {

namespace {

#if defined(__GNUC__) && defined(__x86_64__)
#define DC_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DC_SIMD_CLONES
#endif

// Q rows (stride SQ) = softmax(sign * x rows (stride SX)) over the first L values, like densecrf's
// expAndNormalize: subtract the max, exponentiate, divide by the sum.
DC_SIMD_CLONES void softmax_rows(const float* __restrict__ x, int64_t SX, float* __restrict__ q,
                                 int64_t SQ, int64_t L, float sign, int64_t pb, int64_t pe) {
  for (int64_t p = pb; p < pe; ++p) {
    const float* __restrict__ xr = x + p * SX;
    float* __restrict__ qr = q + p * SQ;
    float mx = sign * xr[0];
    for (int64_t l = 1; l < L; ++l) mx = std::max(mx, sign * xr[l]);
    for (int64_t l = 0; l < L; ++l) qr[l] = exp_nonpositive(sign * xr[l] - mx);
    float s = 0.0f;
    for (int64_t l = 0; l < L; ++l) s += qr[l];
    for (int64_t l = 0; l < L; ++l) qr[l] = qr[l] / s;
  }
}

// acc -= compat . msg per point (acc starts as -unary for the first kernel); rows of stride S,
// unary rows of stride L.
DC_SIMD_CLONES void accumulate_rows(const float* __restrict__ U, const float* __restrict__ msg,
                                    const float* __restrict__ c, bool full, bool first, int64_t L,
                                    int64_t S, float* __restrict__ acc, int64_t pb, int64_t pe) {
  for (int64_t p = pb; p < pe; ++p) {
    float* __restrict__ a = acc + p * S;
    const float* __restrict__ m = msg + p * S;
    if (first)
      for (int64_t l = 0; l < L; ++l) a[l] = -U[p * L + l];
    if (full) {
      for (int64_t l = 0; l < L; ++l) {
        float s = 0.0f;
        for (int64_t j = 0; j < L; ++j) s += c[l * L + j] * m[j];
        a[l] -= s;
      }
    } else {
      for (int64_t l = 0; l < L; ++l) a[l] -= c[l] * m[l];
    }
  }
}

}  // namespace

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
  const float* U = unary.data_ptr<float>();
  const int64_t S = padded_stride(L);
  const int64_t grain = std::max<int64_t>(1, 4096 / S);
  // Q is kept padded to whole SIMD blocks (zeros after the L labels) for the filter loops.
  std::vector<float> q((size_t)P * S, 0.0f);
  if (q_init.has_value() && !(K == 0 && max_iter > 0)) {
    const float* qi = Q.data_ptr<float>();
    at::parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) std::copy(qi + p * L, qi + (p + 1) * L, &q[p * S]);
    });
  } else {
    at::parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
      softmax_rows(U, L, q.data(), S, L, -1.0f, b, e);
    });
  }
  std::vector<LatticeView> views;
  int64_t maxM = 0;
  for (int64_t k = 0; k < K; ++k) {
    views.push_back(lattice_view(offsets[k], weights[k], neighbors[k], splat_ptr[k], splat_src[k]));
    maxM = std::max(maxM, views.back().M);
  }
  std::vector<float> acc((size_t)P * S), msg((size_t)P * S);
  std::vector<float> buf_a((size_t)maxM * S), buf_b((size_t)maxM * S);
  for (int64_t it = 0; K > 0 && it < max_iter; ++it) {
    for (int64_t k = 0; k < K; ++k) {
      const float* pre = norm_before[k].numel() ? norm_before[k].data_ptr<float>() : nullptr;
      const float* post = norm_after[k].numel() ? norm_after[k].data_ptr<float>() : nullptr;
      filter_values_cpu(views[k], q.data(), S, L, pre, post, false, msg.data(), buf_a.data(),
                        buf_b.data());
      const float* c = compat[k].data_ptr<float>();
      const bool full = compat[k].dim() == 2;
      const bool first = k == 0;
      at::parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
        accumulate_rows(U, msg.data(), c, full, first, L, S, acc.data(), b, e);
      });
    }
    at::parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
      softmax_rows(acc.data(), S, q.data(), S, L, 1.0f, b, e);
    });
  }
  float* qo = Q.data_ptr<float>();
  at::parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) std::copy(&q[p * S], &q[p * S] + L, qo + p * L);
  });
  return Q;
}

}  // namespace permutohedral
}  // namespace deeplab_caffe

TORCH_LIBRARY_IMPL(deeplab_caffe, CPU, m) {
  m.impl("dense_crf_meanfield", &deeplab_caffe::permutohedral::meanfield_cpu);
}
