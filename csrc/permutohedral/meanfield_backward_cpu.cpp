// CPU backward of the mean field (the maths in meanfield_backward.h): per iteration, from the
// last to the first, each kernel's splat and reversed blur of na_k * g on the forward's lattice
// (splat_blur_cpu, as the filter's adjoint), then one fused pass over the points that slices r_k,
// adds the compatibilities' gradients, the unary's, and turns dL/dQ_t into the previous
// iteration's g (the softmax's backward) in place.
#include "common.h"
#include "permutohedral/crf_threads.h"
#include "permutohedral/lattice_host.h"
#include "permutohedral/meanfield_backward.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <tuple>
#include <vector>

namespace deeplab_caffe {
namespace permutohedral {

namespace {

// One kernel of an iteration's backward: its lattice, blurred adjoint values, scales and
// compatibility.
struct AdjointSource {
  LatticeView L;
  const float* vals = nullptr;  // (M, S): blur^T(splat(na * g))
  const float* nb = nullptr;    // (P,) or null
  const float* c = nullptr;     // (L,) diagonal or (L, L)
  bool full = false;
  float alpha = 0;
  float* r_out = nullptr;       // full C: (P, L) rows of r for the matrix gradient, else null
  double* part = nullptr;       // diagonal C: this block's (L,) sums of r * nb * Q
};

// The fused pass over the points [pb, pe) of iteration t.  g (P, S) holds dL/da_t and becomes
// dL/da_{t-1} (or, with q0_grad, dL/dQ_0 goes there instead).  r, gq: S floats of scratch.
DC_SIMD_CLONES void backward_rows(AdjointSource* ks, int64_t K, const float* __restrict__ q,
                                  int64_t L, int64_t S, float* __restrict__ g,
                                  float* __restrict__ gu, float* __restrict__ q0_grad,
                                  float* __restrict__ r, float* __restrict__ gq, int64_t pb,
                                  int64_t pe) {
  for (int64_t p = pb; p < pe; ++p) {
    const float* __restrict__ qp = q + p * L;
    float* __restrict__ gp = g + p * S;
    for (int64_t c = 0; c < S; ++c) gq[c] = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      const AdjointSource& src = ks[k];
      const int dp1 = src.L.d + 1;
      const int32_t* off = src.L.offsets + p * dp1;
      const float* wt = src.L.weights + p * dp1;
      for (int64_t c = 0; c < S; ++c) r[c] = 0.0f;
      for (int j = 0; j < dp1; ++j) {  // the filter's slice (slice_rows), without its post
        const float* __restrict__ val = src.vals + (int64_t)off[j] * S;
        const float w = wt[j];
        if (L <= 2) {
          for (int64_t c = 0; c < S; ++c) slice_accumulate(r[c], w, val[c], src.alpha, true);
        } else {
          for (int64_t c = 0; c < S; ++c) slice_accumulate(r[c], w, val[c], src.alpha, false);
        }
      }
      const float nbp = src.nb ? src.nb[p] : 1.0f;
      if (src.full) {
        for (int64_t l = 0; l < L; ++l) src.r_out[p * L + l] = r[l];
        for (int64_t j = 0; j < L; ++j) {
          float s = 0.0f;
          for (int64_t l = 0; l < L; ++l) s += r[l] * src.c[l * L + j];
          gq[j] -= src.nb ? nbp * s : s;
        }
      } else {
        for (int64_t l = 0; l < L; ++l) {
          const float qb = src.nb ? qp[l] * nbp : qp[l];
          src.part[l] += (double)(r[l] * qb);
          const float rc = r[l] * src.c[l];
          gq[l] -= src.nb ? nbp * rc : rc;
        }
      }
    }
    for (int64_t l = 0; l < L; ++l) gu[p * L + l] -= gp[l];
    if (q0_grad) {
      for (int64_t l = 0; l < L; ++l) q0_grad[p * L + l] = gq[l];
    } else {
      float s = 0.0f;
      for (int64_t l = 0; l < L; ++l) s += gq[l] * qp[l];
      for (int64_t l = 0; l < L; ++l) gp[l] = qp[l] * (gq[l] - s);
    }
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>> meanfield_backward_cpu(
    const at::Tensor& grad_logits, at::TensorList q_history_in, at::TensorList offsets,
    at::TensorList weights, at::TensorList neighbors, at::TensorList splat_ptr,
    at::TensorList splat_src, at::TensorList norm_before, at::TensorList norm_after,
    at::TensorList compat) {
  check_meanfield_backward(grad_logits, q_history_in);
  const int64_t K = check_meanfield(grad_logits, std::nullopt, offsets, weights, neighbors,
                                    splat_ptr, splat_src, norm_before, norm_after, compat, 1);
  std::vector<at::Tensor> q_history;
  for (const at::Tensor& q : q_history_in) q_history.push_back(q.contiguous());
  const int64_t T = (int64_t)q_history.size(), P = grad_logits.size(0), L = grad_logits.size(1);
  at::Tensor grad_q0 = at::zeros({P, L}, grad_logits.options());
  at::Tensor grad_unary = at::zeros({P, L}, grad_logits.options());
  std::vector<at::Tensor> grad_compat;
  for (int64_t k = 0; k < K; ++k) grad_compat.push_back(at::zeros_like(compat[k]));
  if (P == 0) return {grad_q0, grad_unary, grad_compat};
  CrfThreadsScope threads;
  const int64_t S = padded_stride(L);
  std::vector<float> g((size_t)(P * S), 0.0f);  // dL/da_t, padded like the forward's Q
  {
    const at::Tensor gl = grad_logits.contiguous();
    const float* src = gl.data_ptr<float>();
    for (int64_t p = 0; p < P; ++p) std::copy(src + p * L, src + (p + 1) * L, &g[p * S]);
  }
  std::vector<AdjointSource> srcs((size_t)K);
  std::vector<SplatPlan> plans((size_t)K);
  std::vector<std::vector<float>> bufs((size_t)(2 * K)), r_rows((size_t)K);
  const int64_t blocks = (P + kGradCompatBlock - 1) / kGradCompatBlock;
  std::vector<double> parts((size_t)(blocks * K * L), 0.0);
  for (int64_t k = 0; k < K; ++k) {
    AdjointSource& s = srcs[k];
    s.L = lattice_view(offsets[k], weights[k], neighbors[k], splat_ptr[k], splat_src[k]);
    s.nb = norm_before[k].numel() ? norm_before[k].data_ptr<float>() : nullptr;
    s.c = compat[k].data_ptr<float>();
    s.full = compat[k].dim() == 2;
    s.alpha = slice_alpha(s.L.d);
    if (s.full) {
      r_rows[k].resize((size_t)(P * L));
      s.r_out = r_rows[k].data();
    }
    plans[k] = plan_splat(s.L);
    bufs[2 * k].resize((size_t)(s.L.M * S));
    bufs[2 * k + 1].resize((size_t)(s.L.M * S));
  }
  float* gu = grad_unary.data_ptr<float>();
  for (int64_t t = T - 1; t >= 0; --t) {
    if (t < T - 1) threads.resample();
    for (int64_t k = 0; k < K; ++k) {
      const float* na = norm_after[k].numel() ? norm_after[k].data_ptr<float>() : nullptr;
      srcs[k].vals = splat_blur_cpu(srcs[k].L, g.data(), S, na, true, bufs[2 * k].data(),
                                    bufs[2 * k + 1].data(), plans[k]);
    }
    const float* q = q_history[t].data_ptr<float>();
    float* q0_grad = t == 0 ? grad_q0.data_ptr<float>() : nullptr;
    crf_parallel_for(0, blocks, 1, [&](int64_t b, int64_t e) {
      std::vector<float> r((size_t)S), gq((size_t)S);
      std::vector<AdjointSource> ks(srcs);
      for (int64_t blk = b; blk < e; ++blk) {
        for (int64_t k = 0; k < K; ++k) ks[k].part = &parts[(blk * K + k) * L];
        backward_rows(ks.data(), K, q, L, S, g.data(), gu, q0_grad, r.data(), gq.data(),
                      blk * kGradCompatBlock, std::min(P, (blk + 1) * kGradCompatBlock));
      }
    });
    for (int64_t k = 0; k < K; ++k) {
      if (!srcs[k].full) continue;
      at::Tensor qt = q_history[t];
      if (srcs[k].nb) qt = qt * norm_before[k].unsqueeze(1);
      const at::Tensor r = at::from_blob(r_rows[k].data(), {P, L}, grad_logits.options());
      grad_compat[k].sub_(at::mm(r.t(), qt));
    }
  }
  // The diagonal compatibilities' sums: block by block in block order (any thread count).
  for (int64_t k = 0; k < K; ++k) {
    if (srcs[k].full) continue;
    std::vector<double> total((size_t)L, 0.0);
    for (int64_t blk = 0; blk < blocks; ++blk)
      for (int64_t l = 0; l < L; ++l) total[l] += parts[(blk * K + k) * L + l];
    float* gc = grad_compat[k].data_ptr<float>();
    for (int64_t l = 0; l < L; ++l) gc[l] = (float)-total[l];
  }
  return {grad_q0, grad_unary, grad_compat};
}

}  // namespace permutohedral
}  // namespace deeplab_caffe

TORCH_LIBRARY_IMPL(deeplab_caffe, CPU, m) {
  m.impl("dense_crf_meanfield_backward", &deeplab_caffe::permutohedral::meanfield_backward_cpu);
}
