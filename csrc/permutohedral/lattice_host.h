// Host-side helpers shared by the CPU and CUDA backends of the lattice and mean-field ops: argument
// checks (ValueError naming the argument), a raw view of a lattice's tensors, and the CPU filter
// used by the CPU mean-field loop.
#pragma once

#include "common.h"
#include "permutohedral/fused_update.h"
#include "permutohedral/lattice.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <tuple>

// The CPU's hot loops, compiled twice (AVX2 and baseline) and picked at load time.  No FMA: every
// product and sum rounds like densecrf's SSE2 build (so results match it to float rounding) and as
// the CUDA twins' __fmul_rn/__fadd_rn do.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__CUDACC__)
#define DC_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DC_SIMD_CLONES
#endif

namespace deeplab_caffe {
namespace permutohedral {

inline void check_build_args(const at::Tensor& features,
                             const std::optional<at::Tensor>& image_ids) {
  DC_CHECK_ARG(features.dim() == 2, "features must be 2-D (P, d), got shape ", features.sizes());
  DC_CHECK_ARG(features.scalar_type() == at::kFloat, "features must be float32, got ",
               features.scalar_type());
  DC_CHECK_ARG(features.size(1) >= 1 && features.size(1) <= kMaxDim,
               "features must have 1..", kMaxDim, " dimensions, got d = ", features.size(1));
  DC_CHECK_ARG(features.size(0) * (features.size(1) + 1) < (int64_t)INT32_MAX,
               "features: too many points (", features.size(0), ")");
  if (image_ids.has_value()) {
    const at::Tensor& ids = *image_ids;
    DC_CHECK_ARG(ids.dim() == 1 && ids.size(0) == features.size(0),
                 "image_ids must be (P,) with P = ", features.size(0), ", got shape ", ids.sizes());
    DC_CHECK_ARG(ids.scalar_type() == at::kInt || ids.scalar_type() == at::kLong,
                 "image_ids must be int32 or int64, got ", ids.scalar_type());
    DC_CHECK_ARG(ids.device() == features.device(), "image_ids is on ", ids.device(),
                 " but features is on ", features.device());
  }
}

inline void check_lattice(const at::Tensor& offsets, const at::Tensor& weights,
                          const at::Tensor& neighbors, const at::Tensor& splat_ptr,
                          const at::Tensor& splat_src, const std::string& where) {
  DC_CHECK_ARG(offsets.dim() == 2 && offsets.size(1) >= 2 && offsets.size(1) <= kMaxDim + 1 &&
                   offsets.scalar_type() == at::kInt && offsets.is_contiguous(),
               "offsets", where, " must be a contiguous int32 (P, d+1) tensor, got ",
               offsets.scalar_type(), " ", offsets.sizes());
  const int64_t P = offsets.size(0), dp1 = offsets.size(1);
  DC_CHECK_ARG(weights.sizes() == offsets.sizes() && weights.scalar_type() == at::kFloat &&
                   weights.is_contiguous(),
               "weights", where, " must be a contiguous float32 ", offsets.sizes(), " tensor, got ",
               weights.scalar_type(), " ", weights.sizes());
  DC_CHECK_ARG(neighbors.dim() == 3 && neighbors.size(0) == dp1 && neighbors.size(2) == 2 &&
                   neighbors.scalar_type() == at::kInt && neighbors.is_contiguous(),
               "blur_neighbors", where, " must be a contiguous int32 (", dp1, ", M, 2) tensor, got ",
               neighbors.scalar_type(), " ", neighbors.sizes());
  const int64_t M = neighbors.size(1);
  DC_CHECK_ARG(splat_ptr.dim() == 1 && splat_ptr.size(0) == M + 1 &&
                   splat_ptr.scalar_type() == at::kInt && splat_ptr.is_contiguous(),
               "splat_ptr", where, " must be a contiguous int32 (", M + 1, ",) tensor, got ",
               splat_ptr.scalar_type(), " ", splat_ptr.sizes());
  DC_CHECK_ARG(splat_src.dim() == 1 && splat_src.size(0) == P * dp1 &&
                   splat_src.scalar_type() == at::kInt && splat_src.is_contiguous(),
               "splat_src", where, " must be a contiguous int32 (", P * dp1, ",) tensor, got ",
               splat_src.scalar_type(), " ", splat_src.sizes());
  for (const at::Tensor* t : {&weights, &neighbors, &splat_ptr, &splat_src})
    DC_CHECK_ARG(t->device() == offsets.device(), "lattice", where,
                 " tensors must share one device, got ", t->device(), " and ", offsets.device());
}

// The `values` argument of permutohedral_filter (float32) and permutohedral_filter_f64 (float64),
// on either backend.
inline void check_filter_values(const at::Tensor& values, const at::Tensor& offsets,
                                at::ScalarType dtype = at::kFloat) {
  DC_CHECK_ARG(values.dim() == 2 && values.size(0) == offsets.size(0),
               "values must be (P, C) with P = ", offsets.size(0), " points, got shape ",
               values.sizes());
  DC_CHECK_ARG(values.scalar_type() == dtype, "values must be ", dtype, ", got ",
               values.scalar_type());
  DC_CHECK_ARG(values.device() == offsets.device(), "values is on ", values.device(),
               " but the lattice is on ", offsets.device());
}

inline LatticeView lattice_view(const at::Tensor& offsets, const at::Tensor& weights,
                                const at::Tensor& neighbors, const at::Tensor& splat_ptr,
                                const at::Tensor& splat_src) {
  LatticeView L;
  L.P = offsets.size(0);
  L.d = (int)offsets.size(1) - 1;
  L.M = neighbors.size(1);
  L.offsets = offsets.data_ptr<int32_t>();
  L.weights = weights.data_ptr<float>();
  L.neighbors = neighbors.data_ptr<int32_t>();
  L.splat_ptr = splat_ptr.data_ptr<int32_t>();
  L.splat_src = splat_src.data_ptr<int32_t>();
  return L;
}

// Checks the mean-field arguments shared by both backends; returns the number of kernels.
inline int64_t check_meanfield(const at::Tensor& unary, const std::optional<at::Tensor>& q_init,
                               at::TensorList offsets, at::TensorList weights,
                               at::TensorList neighbors, at::TensorList splat_ptr,
                               at::TensorList splat_src, at::TensorList norm_before,
                               at::TensorList norm_after, at::TensorList compat,
                               int64_t max_iter) {
  DC_CHECK_ARG(unary.dim() == 2 && unary.scalar_type() == at::kFloat,
               "unary must be float32 (P, L), got ", unary.scalar_type(), " ", unary.sizes());
  const int64_t P = unary.size(0), L = unary.size(1);
  DC_CHECK_ARG(L >= 1, "unary must have at least one label, got shape ", unary.sizes());
  DC_CHECK_ARG(max_iter >= 0, "max_iter must be >= 0, got ", max_iter);
  if (q_init.has_value())
    DC_CHECK_ARG(q_init->sizes() == unary.sizes() && q_init->scalar_type() == at::kFloat &&
                     q_init->device() == unary.device(),
                 "q_init must be float32 ", unary.sizes(), " on ", unary.device(), ", got ",
                 q_init->scalar_type(), " ", q_init->sizes());
  const size_t K = offsets.size();
  DC_CHECK_ARG(weights.size() == K && neighbors.size() == K && splat_ptr.size() == K &&
                   splat_src.size() == K && norm_before.size() == K && norm_after.size() == K &&
                   compat.size() == K,
               "every per-kernel list must have the same length (", K, " kernels)");
  for (size_t k = 0; k < K; ++k) {
    const std::string where = "[" + std::to_string(k) + "]";
    check_lattice(offsets[k], weights[k], neighbors[k], splat_ptr[k], splat_src[k], where);
    DC_CHECK_ARG(offsets[k].size(0) == P, "offsets", where, " covers ", offsets[k].size(0),
                 " points but unary has ", P);
    DC_CHECK_ARG(offsets[k].device() == unary.device(), "lattice", where, " is on ",
                 offsets[k].device(), " but unary is on ", unary.device());
    for (const at::Tensor* n : {&norm_before[k], &norm_after[k]})
      DC_CHECK_ARG(n->numel() == 0 || (n->dim() == 1 && n->size(0) == P &&
                                       n->scalar_type() == at::kFloat && n->is_contiguous() &&
                                       n->device() == unary.device()),
                   "norm_before/norm_after", where, " must be empty or float32 (", P,
                   ",) on ", unary.device(), ", got ", n->scalar_type(), " ", n->sizes());
    const at::Tensor& c = compat[k];
    DC_CHECK_ARG(c.scalar_type() == at::kFloat && c.is_contiguous() && c.device() == unary.device() &&
                     ((c.dim() == 1 && c.size(0) == L) ||
                      (c.dim() == 2 && c.size(0) == L && c.size(1) == L)),
                 "compat", where, " must be contiguous float32 (", L, ",) or (", L, ", ", L,
                 ") on ", unary.device(), ", got ", c.scalar_type(), " ", c.sizes());
  }
  return (int64_t)K;
}

// The mean-field backward's own arguments (the kernels' are check_meanfield's), both backends.
inline void check_meanfield_backward(const at::Tensor& grad_logits, at::TensorList q_history) {
  DC_CHECK_ARG(grad_logits.dim() == 2 && grad_logits.scalar_type() == at::kFloat,
               "grad_logits must be float32 (P, L), got ", grad_logits.scalar_type(), " ",
               grad_logits.sizes());
  DC_CHECK_ARG(!q_history.empty(), "q_history must hold at least one iteration's Q");
  for (size_t t = 0; t < q_history.size(); ++t)
    DC_CHECK_ARG(q_history[t].sizes() == grad_logits.sizes() &&
                     q_history[t].scalar_type() == at::kFloat &&
                     q_history[t].device() == grad_logits.device(),
                 "q_history[", t, "] must be float32 ", grad_logits.sizes(), " on ",
                 grad_logits.device(), ", got ", q_history[t].scalar_type(), " ",
                 q_history[t].sizes());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> build_cpu(
    const at::Tensor& features, const std::optional<at::Tensor>& image_ids);

// CPU rows are padded to whole blocks of kLanes floats so the SIMD loops have no remainder.
constexpr int64_t kLanes = 8;
// Points ahead whose lattice rows the splat and the mean-field slice prefetch: far enough to cover
// a miss to L3 or memory, near enough to stay in L1.
constexpr int64_t kPrefetchAhead = 6;
// One value per row (the normaliser) stays unpadded: padding it would move 8x the memory.
inline int64_t padded_stride(int64_t C) { return C == 1 ? 1 : (C + kLanes - 1) / kLanes * kLanes; }

// For the CPU splat: when vertex numbers follow first occurrence over the (point, corner) entries
// (as both builders number them), m0 = the number of vertices the splat's first half of the
// points touches and touched = the number all entries touch (vertices from there on are reached
// by no point: the padding points of a pydensecrf-compatible lattice); m0 = -1 otherwise.
struct SplatPlan {
  int64_t m0 = -1;
  int64_t touched = 0;
};
SplatPlan plan_splat(const LatticeView& L);

// One point's part of a splat, shared by the splat of lattice_cpu.cpp and the mean field's fused
// update: adds w_j * x into the row of each of point p's d+1 corners, in corner order.  A corner
// v >= new_base has its row in out_new, one below in out_old.  Rows from new_base on are first
// touched in increasing order (vertex numbers follow first occurrence): `next` is the next one,
// and add(row, w, first) writes 0 + w * x on a first touch (what adding to a zeroed row gives),
// so those rows need no zeroing.  DP1 > 0 fixes the corner count d+1 at compile time.
template <int DP1 = 0, class Add>
inline void splat_point(const LatticeView& L, int64_t p, int64_t S, float* out_new,
                        int64_t new_base, float* out_old, int64_t& next, const Add& add) {
  const int dp1 = DP1 > 0 ? DP1 : L.d + 1;
  for (int j = 0; j < dp1; ++j) {
    const int64_t v = L.offsets[p * dp1 + j];
    const bool first = v == next;
    next += first;
    add((v >= new_base ? out_new : out_old) + v * S, L.weights[p * dp1 + j], first);
  }
}

// Pulls the rows point p's corners splat into (or slice from) into the cache.
inline void prefetch_corner_rows(const LatticeView& L, int64_t p, int64_t S, const float* out_new,
                                 int64_t new_base, const float* out_old) {
  const int dp1 = L.d + 1;
  for (int j = 0; j < dp1; ++j) {
    const int64_t v = L.offsets[p * dp1 + j];
    const float* row = (v >= new_base ? out_new : out_old) + v * S;
    __builtin_prefetch(row);
    __builtin_prefetch(row + S - 1);
  }
}

// The splat's second step when plan.m0 >= 0: the first half's rows [0, m0) of buf_a get the
// second half's rows of buf_b added, and the rows no point reaches (from plan.touched on) are
// zeroed.
void add_splat_halves(const LatticeView& L, int64_t S, const SplatPlan& plan, float* buf_a,
                      const float* buf_b);
// One thread's share of it (crf_threads.h's TeamPart): its rows, no barrier.
struct TeamPart;
void add_splat_halves(const LatticeView& L, int64_t S, const SplatPlan& plan, float* buf_a,
                      const float* buf_b, const TeamPart& part);

// The d+1 blur passes (axes in reverse order when `reverse`) from cur, with nxt as the other
// buffer; returns the one holding the result.
float* blur_cpu(const LatticeView& L, int64_t S, bool reverse, float* cur, float* nxt);
// The same on a team: each thread blurs its share of every pass's rows, the team meeting between
// passes (not after the last).
float* blur_cpu(const LatticeView& L, int64_t S, bool reverse, float* cur, float* nxt,
                const TeamPart& part);

// blur(splat(pre * in)) into buf_a/buf_b (M*S floats each); returns the one holding the result.
// plan: plan_splat(L), which saves zeroing the buffers, or the default (m0 = -1).
float* splat_blur_cpu(const LatticeView& L, const float* in, int64_t S, const float* pre,
                      bool reverse, float* buf_a, float* buf_b, const SplatPlan& plan);

// out = post * slice(blur(splat(pre * in))): in and out are (P, S) row-major with the C values of a
// row first and zeros up to the stride S = padded_stride(C); buffers hold M*S floats.
void filter_values_cpu(const LatticeView& L, const float* in, int64_t S, int64_t C,
                       const float* pre, const float* post, bool reverse, float* out,
                       float* buf_a, float* buf_b);

}  // namespace permutohedral
}  // namespace deeplab_caffe
