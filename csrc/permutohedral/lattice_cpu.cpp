// CPU permutohedral filter: splat in point order over two fixed halves, blur, slice, each
// parallel, on a lattice from lattice_build_cpu.cpp.  The mean-field loop that reuses these
// lives in meanfield_cpu.cpp.
#include "common.h"
#include "permutohedral/lattice.h"
#include "permutohedral/crf_profile.h"
#include "permutohedral/crf_threads.h"
#include "permutohedral/lattice_host.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace deeplab_caffe {
namespace permutohedral {

namespace {


// Splat of the points [pb, pe), in point order like densecrf: the point rows stream in order and
// only the (smaller) lattice is accessed at random.
// new_base < 0: every row accumulates into out_new, zeroed here.
// new_base >= 0 (vertex numbers follow first occurrence, checked by the caller): rows >= new_base
// go to out_new and are first touched in increasing order, so the first touch writes 0 + w x
// (what adding to a zeroed row gives) and they need no zeroing; rows < new_base accumulate into
// out_old, which the caller zeroed.
DC_SIMD_CLONES void splat_points(const LatticeView& L, const float* __restrict__ in, int64_t S,
                                 const float* __restrict__ pre, float* __restrict__ out_new,
                                 int64_t new_base, float* __restrict__ out_old, int64_t pb,
                                 int64_t pe) {
  const bool zeroed = new_base < 0;
  if (zeroed) {
    for (int64_t i = 0; i < L.M * S; ++i) out_new[i] = 0.0f;
    new_base = 0;
  }
  int64_t next = zeroed ? -1 : new_base;  // the next row to be touched first (-1: none)
  for (int64_t p = pb; p < pe; ++p) {
    if (S > 1 && p + kPrefetchAhead < pe)  // one value per row: the lattice stays in cache
      prefetch_corner_rows(L, p + kPrefetchAhead, S, out_new, new_base, out_old);
    const float* __restrict__ x = in + p * S;
    const float sc = pre ? pre[p] : 1.0f;
    splat_point(L, p, S, out_new, new_base, out_old, next, [&](float* __restrict__ acc, float w,
                                                                  bool first) {
      if (S == 1) {  // the normaliser: one unpadded value per row
        acc[0] = (first ? 0.0f : acc[0]) + w * (pre ? x[0] * sc : x[0]);
      } else if (first) {
        if (pre) {
          for (int64_t c0 = 0; c0 < S; c0 += kLanes)
            for (int c = 0; c < kLanes; ++c) acc[c0 + c] = 0.0f + w * (x[c0 + c] * sc);
        } else {
          for (int64_t c0 = 0; c0 < S; c0 += kLanes)
            for (int c = 0; c < kLanes; ++c) acc[c0 + c] = 0.0f + w * x[c0 + c];
        }
      } else if (pre) {
        for (int64_t c0 = 0; c0 < S; c0 += kLanes)
          for (int c = 0; c < kLanes; ++c) acc[c0 + c] += w * (x[c0 + c] * sc);
      } else {
        for (int64_t c0 = 0; c0 < S; c0 += kLanes)
          for (int c = 0; c < kLanes; ++c) acc[c0 + c] += w * x[c0 + c];
      }
    });
  }
}

DC_SIMD_CLONES void add_rows(float* __restrict__ a, const float* __restrict__ b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

DC_SIMD_CLONES void blur_rows(const int32_t* __restrict__ nb, int64_t S,
                              const float* __restrict__ cur, float* __restrict__ nxt, int64_t vb,
                              int64_t ve) {
  for (int64_t v = vb; v < ve; ++v) {
    const int32_t n1 = nb[2 * v], n2 = nb[2 * v + 1];
    const float* __restrict__ o = cur + v * S;
    float* __restrict__ nv = nxt + v * S;
    if (S == 1) {
      nv[0] = o[0] + 0.5f * ((n1 >= 0 ? cur[n1] : 0.0f) + (n2 >= 0 ? cur[n2] : 0.0f));
    } else if (n1 >= 0 && n2 >= 0) {
      const float* __restrict__ a = cur + (int64_t)n1 * S;
      const float* __restrict__ z = cur + (int64_t)n2 * S;
      for (int64_t c0 = 0; c0 < S; c0 += kLanes)
        for (int c = 0; c < kLanes; ++c) nv[c0 + c] = o[c0 + c] + 0.5f * (a[c0 + c] + z[c0 + c]);
    } else if (n1 >= 0 || n2 >= 0) {
      const float* __restrict__ y = cur + (int64_t)(n1 >= 0 ? n1 : n2) * S;
      for (int64_t c0 = 0; c0 < S; c0 += kLanes)
        for (int c = 0; c < kLanes; ++c) nv[c0 + c] = o[c0 + c] + 0.5f * y[c0 + c];
    } else {
      for (int64_t c = 0; c < S; ++c) nv[c] = o[c];
    }
  }
}

DC_SIMD_CLONES void slice_rows(const LatticeView& L, const float* __restrict__ vals, int64_t S,
                               bool scalar_order, float alpha, const float* __restrict__ post,
                               float* __restrict__ out, int64_t pb, int64_t pe) {
  const int dp1 = L.d + 1;
  if (S == 1) {  // the normaliser: one unpadded value per row, the lattice small enough to stay
                 // in cache, so no prefetch and no row loops
    for (int64_t p = pb; p < pe; ++p) {
      float y = 0.0f;
      for (int j = 0; j < dp1; ++j)
        slice_accumulate(y, L.weights[p * dp1 + j], vals[L.offsets[p * dp1 + j]], alpha, true);
      out[p] = post ? y * post[p] : y;
    }
    return;
  }
  for (int64_t p = pb; p < pe; ++p) {
    if (p + 2 < L.P)
      for (int j = 0; j < dp1; ++j) {
        const float* row = vals + (int64_t)L.offsets[(p + 2) * dp1 + j] * S;
        __builtin_prefetch(row);
        __builtin_prefetch(row + S - 1);
      }
    float* __restrict__ y = out + p * S;
    for (int64_t c = 0; c < S; ++c) y[c] = 0.0f;
    for (int j = 0; j < dp1; ++j) {
      const float* __restrict__ val = vals + (int64_t)L.offsets[p * dp1 + j] * S;
      const float w = L.weights[p * dp1 + j];
      if (S == 1) {
        slice_accumulate(y[0], w, val[0], alpha, true);
      } else if (scalar_order) {  // the order a constant, so each loop vectorises
        for (int64_t c0 = 0; c0 < S; c0 += kLanes)
          for (int c = 0; c < kLanes; ++c)
            slice_accumulate(y[c0 + c], w, val[c0 + c], alpha, true);
      } else {
        for (int64_t c0 = 0; c0 < S; c0 += kLanes)
          for (int c = 0; c < kLanes; ++c)
            slice_accumulate(y[c0 + c], w, val[c0 + c], alpha, false);
      }
    }
    if (post) {
      const float sc = post[p];
      for (int64_t c = 0; c < S; ++c) y[c] *= sc;
    }
  }
}

}  // namespace

SplatPlan plan_splat(const LatticeView& L) {
  const int dp1 = L.d + 1;
  const int64_t half_end = splat_half(L.P) * dp1, n = L.P * dp1;
  int64_t next = 0, m0 = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (i == half_end) m0 = next;
    const int64_t v = L.offsets[i];
    if (v == next) ++next;
    else if (v > next || v < 0) return SplatPlan{};
  }
  if (half_end == n) m0 = next;
  return SplatPlan{m0, next};
}

float* splat_blur_cpu(const LatticeView& L, const float* in, int64_t S, const float* pre,
                      bool reverse, float* buf_a, float* buf_b, const SplatPlan& plan) {
  const int64_t m0 = plan.m0;
  const int64_t grain = std::max<int64_t>(16, 8192 / S);
  PhaseLap phase(&PhaseTimes::splat);
  // Two fixed halves of the points splat separately (in parallel when two threads are free),
  // then add: the result does not depend on the thread count.
  const int64_t half = splat_half(L.P);
  if (m0 < 0) {  // each half into its own zeroed buffer
    crf_parallel_big(0, half < L.P ? 2 : 1, 1, [&](int64_t b, int64_t e) {
      for (int64_t h = b; h < e; ++h)
        splat_points(L, in, S, pre, h == 0 ? buf_a : buf_b, -1, nullptr, h == 0 ? 0 : half,
                     h == 0 ? half : L.P);
    });
    if (half < L.P)
      crf_parallel_for(0, L.M, grain, [&](int64_t b, int64_t e) {
        add_rows(buf_a + b * S, buf_b + b * S, (e - b) * S);
      });
  } else {
    // The first half's vertices are rows [0, m0) of buf_a; the second half adds into rows
    // [0, m0) of buf_b (the only zeroing left) and writes its new vertices into buf_a.
    crf_parallel_big(0, half < L.P ? 2 : 1, 1, [&](int64_t b, int64_t e) {
      for (int64_t h = b; h < e; ++h) {
        if (h == 0) {
          splat_points(L, in, S, pre, buf_a, 0, nullptr, 0, half);
        } else {
          std::fill(buf_b, buf_b + m0 * S, 0.0f);
          splat_points(L, in, S, pre, buf_a, m0, buf_b, half, L.P);
        }
      }
    });
    add_splat_halves(L, S, plan, buf_a, buf_b);
  }
  phase.lap(&PhaseTimes::blur);
  return blur_cpu(L, S, reverse, buf_a, buf_b);
}

void add_splat_halves(const LatticeView& L, int64_t S, const SplatPlan& plan, float* buf_a,
                      const float* buf_b) {
  const int64_t grain = std::max<int64_t>(16, 8192 / S);
  if (splat_half(L.P) < L.P)
    crf_parallel_for(0, plan.m0, grain, [&](int64_t b, int64_t e) {
      add_rows(buf_a + b * S, buf_b + b * S, (e - b) * S);
    });
  std::fill(buf_a + plan.touched * S, buf_a + L.M * S, 0.0f);  // vertices no point reaches
}

void add_splat_halves(const LatticeView& L, int64_t S, const SplatPlan& plan, float* buf_a,
                      const float* buf_b, const TeamPart& part) {
  if (splat_half(L.P) < L.P) {
    const int64_t b = part.begin(plan.m0), e = part.end(plan.m0);
    add_rows(buf_a + b * S, buf_b + b * S, (e - b) * S);
  }
  const int64_t n = L.M - plan.touched;
  std::fill(buf_a + (plan.touched + part.begin(n)) * S, buf_a + (plan.touched + part.end(n)) * S,
            0.0f);
}

float* blur_cpu(const LatticeView& L, int64_t S, bool reverse, float* cur, float* nxt) {
  const int64_t grain = std::max<int64_t>(16, 8192 / S);
  for (int step = 0; step <= L.d; ++step) {
    const int j = reverse ? L.d - step : step;
    const int32_t* nb = L.neighbors + (int64_t)j * L.M * 2;
    crf_parallel_for(0, L.M, grain, [&](int64_t b, int64_t e) {
      blur_rows(nb, S, cur, nxt, b, e);
    });
    std::swap(cur, nxt);
  }
  return cur;
}

float* blur_cpu(const LatticeView& L, int64_t S, bool reverse, float* cur, float* nxt,
                const TeamPart& part) {
  for (int step = 0; step <= L.d; ++step) {
    if (step > 0) part.sync();  // a pass reads rows the previous one wrote on either thread
    const int j = reverse ? L.d - step : step;
    blur_rows(L.neighbors + (int64_t)j * L.M * 2, S, cur, nxt, part.begin(L.M), part.end(L.M));
    std::swap(cur, nxt);
  }
  return cur;
}

void filter_values_cpu(const LatticeView& L, const float* in, int64_t S, int64_t C,
                       const float* pre, const float* post, bool reverse, float* out,
                       float* buf_a, float* buf_b) {
  TORCH_INTERNAL_ASSERT(S == padded_stride(C));
  const int64_t grain = std::max<int64_t>(16, 8192 / S);
  const float* cur = splat_blur_cpu(L, in, S, pre, reverse, buf_a, buf_b, SplatPlan{});
  const float alpha = slice_alpha(L.d);
  crf_parallel_for(0, L.P, grain, [&](int64_t b, int64_t e) {
    slice_rows(L, cur, S, C <= 2, alpha, post, out, b, e);
  });
}

at::Tensor filter_cpu(const at::Tensor& values_in, const at::Tensor& offsets,
                      const at::Tensor& weights, const at::Tensor& blur_neighbors,
                      const at::Tensor& splat_ptr, const at::Tensor& splat_src, bool reverse) {
  check_lattice(offsets, weights, blur_neighbors, splat_ptr, splat_src, "");
  check_filter_values(values_in, offsets);
  CrfThreadsScope threads;
  const at::Tensor values = values_in.contiguous();
  const int64_t C = values.size(1);
  at::Tensor out = at::empty_like(values);
  const LatticeView L = lattice_view(offsets, weights, blur_neighbors, splat_ptr, splat_src);
  if (L.P == 0 || C == 0) return out.zero_();
  // Rows padded to whole SIMD blocks: the inner loops then have no scalar remainder.  Rows
  // that are whole blocks already (and the normaliser's single value) are used as they are.
  const int64_t S = padded_stride(C);
  std::vector<float> a((size_t)L.M * S), b((size_t)L.M * S);
  if (S == C) {
    filter_values_cpu(L, values.data_ptr<float>(), S, C, nullptr, nullptr, reverse,
                      out.data_ptr<float>(), a.data(), b.data());
    return out;
  }
  at::Tensor in_pad = at::zeros({L.P, S}, values.options());
  in_pad.narrow(1, 0, C).copy_(values);
  at::Tensor out_pad = at::empty({L.P, S}, values.options());
  filter_values_cpu(L, in_pad.data_ptr<float>(), S, C, nullptr, nullptr, reverse,
                    out_pad.data_ptr<float>(), a.data(), b.data());
  out.copy_(out_pad.narrow(1, 0, C));
  return out;
}

}  // namespace permutohedral
}  // namespace deeplab_caffe

TORCH_LIBRARY_IMPL(deeplab_caffe, CPU, m) {
  m.impl("permutohedral_filter", &deeplab_caffe::permutohedral::filter_cpu);
}
