// CPU mean-field inference for the fully connected CRF (densecrf v2's loop): each iteration starts
// from -unary, subtracts compat_k applied to every kernel's filtered Q, and takes a per-pixel
// softmax.  The lattices are built once by the caller and reused for every iteration.
// The per-point kernels are in meanfield_rows_cpu.cpp.

#include "common.h"
#include "permutohedral/buffer_pool.h"
#include "permutohedral/crf_profile.h"
#include "permutohedral/crf_threads.h"
#include "permutohedral/lattice_host.h"
#include "permutohedral/meanfield_rows_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace deeplab_caffe {
namespace permutohedral {

namespace {

// Work buffers come from the pool (buffer_pool.h): uninitialised, and no fresh pages per call.
using RawBuffer = PooledFloats;

void barrier_if(int team, SpinBarrier& barrier) {
  if (team > 1) barrier.wait();
}

// The second splat half adds into rows [0, m0) of the kernel's old-rows buffer (splat_points),
// zeroed here beforehand by the threads that blur the kernel, each its share, rather than by the
// second half's thread at the start of its update, which that would lengthen.
void zero_old_rows(float* old, int64_t n, const TeamPart& part) {
  std::fill(old + part.begin(n), old + part.end(n), 0.0f);
}

// Which of a kernel's three buffers holds the blurred values the update slices from, and which
// two the next splat fills (splat_points' out_new and out_old).
struct BufferRoles {
  int vals, fresh, old;
};

// One kernel's splat halves' sum and blur, this thread's share of them (part), after the update
// that sliced from its buffer `vals` and splatted into `fresh` and `old`.  Thread 0 records the
// roles for the next iteration, after the team's last meeting on the kernel (the other read them
// before it).
void sum_and_blur(SliceSource& src, const SplatPlan& plan, const RawBuffer* buf, int64_t S,
                  bool two_halves, BufferRoles& roles, const TeamPart& part) {
  const BufferRoles was = roles;
  float* a = buf[was.fresh].data();
  float* b = buf[was.old].data();
  // The buffer the update sliced from becomes the next splat's old rows (and the blur's last
  // source its new ones): no pass reads it any more, so this share is zeroed at once.
  if (two_halves) zero_old_rows(buf[was.vals].data(), plan.m0 * S, part);
  add_splat_halves(src.L, S, plan, a, b, part);
  part.sync();
  const float* vals = blur_cpu(src.L, S, false, a, b, part);
  if (part.tid == 0) {
    src.vals = vals;
    const int r = vals == a ? was.fresh : was.old;
    roles = BufferRoles{r, was.fresh + was.old - r, was.vals};
  }
}

// The mean-field iterations with each splat fused into the previous iteration's update
// (update_rows_reg with targets), on a team of two threads (crf_team_of_two: one parallel region
// for all the iterations).  Per iteration each thread updates one of splat_half's two fixed
// halves of the points (each half's splat in point order, as splat_points), a big step; then per
// kernel the halves' sum and the blur, small steps, split by rows between the two threads.  Where
// the load leaves the small steps one thread (crf_threads.h), thread 0 runs them alone while the
// other waits at the next meeting; the counts are sampled again each iteration.  Three buffers
// per kernel (BufferRoles): the blurred values the update slices from, and the two the next splat
// fills.  Only the first iteration's splat reads Q; only the last update writes it.
void fused_iterations(std::vector<SliceSource>& srcs, const std::vector<const float*>& pre,
                      const std::vector<SplatPlan>& plans, const std::vector<RawBuffer>& bufs,
                      const float* NU, int64_t L, int64_t S, int blocks, float* q,
                      int64_t max_iter, CrfThreadsScope& threads) {
  const int64_t K = (int64_t)srcs.size(), P = srcs[0].L.P, half = splat_half(P);
  const int64_t halves = half < P ? 2 : 1;
  std::vector<BufferRoles> roles((size_t)K);
  for (int64_t k = 0; k < K; ++k) {
    float* a = bufs[3 * k].data();
    srcs[k].vals = splat_blur_cpu(srcs[k].L, q, S, pre[k], false, a, bufs[3 * k + 1].data(),
                                  plans[k]);
    const int r = srcs[k].vals == a ? 0 : 1;
    roles[k] = BufferRoles{r, 1 - r, 2};
    if (halves > 1) zero_old_rows(bufs[3 * k + 2].data(), plans[k].m0 * S, TeamPart{});
  }
  // The thread counts the load allows, sampled by thread 0 at the start of each update (a few
  // /proc reads, in the two halves' time) and read by both after the next meeting, so that both
  // follow the same counts.
  int big_next = crf_big_threads(), small_next = crf_small_threads();
  // Each thread's splat targets and update rows, allocated here: nothing in the team may throw.
  std::vector<std::vector<SplatTarget>> tgs(2, std::vector<SplatTarget>((size_t)K));
  std::vector<std::vector<float>> scratches(2, std::vector<float>((size_t)(kBlock * S)));
  crf_team_of_two([&](int tid, int team_size, SpinBarrier& barrier) {
    int team = team_size;
    std::vector<SplatTarget>& tg = tgs[tid];
    std::vector<float>& scratch = scratches[tid];
    int big = std::min(team, big_next), small = std::min(big, small_next);
    for (int64_t it = 0; it < max_iter; ++it) {
      const bool last = it + 1 == max_iter;
      PhaseLap phase(&PhaseTimes::update);  // thread 0's times (the profile is thread-local)
      if (tid == 0 && it > 0) {
        threads.resample();  // the machine's load changes while we run
        big_next = crf_big_threads();
        small_next = crf_small_threads();
      }
      const int64_t hb = big == 1 ? 0 : tid, he = big == 1 ? halves : std::min(hb + 1, halves);
      for (int64_t h = hb; h < he && tid < big; ++h) {
        for (int64_t k = 0; k < K && !last; ++k) {
          SplatTarget& t = tg[k];
          t.pre = pre[k];
          t.out_new = bufs[3 * k + roles[k].fresh].data();
          t.new_base = h == 0 ? 0 : plans[k].m0;
          t.out_old = h == 0 ? nullptr : bufs[3 * k + roles[k].old].data();
          t.next = t.new_base;
        }
        update_rows_blocks(blocks, srcs.data(), K, NU, L, q, h == 0 ? 0 : half,
                           h == 0 ? half : P, last ? nullptr : tg.data(), scratch.data());
      }
      if (last) break;
      barrier_if(team, barrier);
      big = std::min(team, big_next);
      small = std::min(big, small_next);
      // Where the load leaves the big steps one thread, the other leaves the team for the rest
      // of the call, after the next meeting (until then thread 0 must not sample again: the
      // other may not have read the counts yet): kept, it would sleep at every meeting, and on a
      // busy machine each of its wake-ups waits for a core, which thread 0 would then wait for.
      const bool leave = big < team;
      phase.lap(&PhaseTimes::blur);
      // (Blurring whole kernels on each thread under load, one meeting after, measured no
      // faster than thread 0 alone: 1.18x against 1.33x our one thread, --load 2.)
      const TeamPart part{tid, small, &barrier};
      for (int64_t k = 0; k < K && tid < part.parts; ++k)
        sum_and_blur(srcs[k], plans[k], &bufs[3 * k], S, halves > 1, roles[k], part);
      barrier_if(team, barrier);
      if (leave) {
        team = 1;
        if (tid > 0) break;
      }
    }
  });
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
  const int64_t P = unary_in.size(0), L = unary_in.size(1);
  const int64_t S = padded_stride(L);
  bool any_full = false;
  for (int64_t k = 0; k < K; ++k) any_full = any_full || compat[k].dim() == 2;
  // The register path (diagonal compatibilities, up to 32 labels) reads -unary as padded rows.
  const int reg_blocks = any_full || S > 4 * kLanes || S == 1 ? 0 : (int)(S / kLanes);
  const bool twin = use_cuda_twin_update() && can_fuse(K, !any_full, L);
  const bool neg_rows = reg_blocks && K > 0 && max_iter > 0;
  // pydensecrf's layout, an (L, P) array seen as (P, L) (the drop-in passes its unary so): the
  // padded rows are filled from it directly, and Q comes back in the same layout, so neither
  // side pays a transposing copy.  Other paths read rows of a contiguous copy.
  const bool labels_first = P > 1 && L > 1 && unary_in.stride(0) == 1 && unary_in.stride(1) == P;
  const bool u_rows = !labels_first || !neg_rows || twin;
  const at::Tensor unary = u_rows ? unary_in.contiguous() : unary_in.t();
  at::Tensor Q = labels_first ? pooled_tensor({L, P}, at::kFloat).t()
                              : pooled_tensor({P, L}, at::kFloat);
  if (P == 0) return Q;
  CrfThreadsScope threads;
  MeanfieldProfile profile(P, L, K, max_iter);
  const float* U = unary.data_ptr<float>();  // (P, L) rows, or (L, P) when !u_rows
  const int64_t grain = std::max<int64_t>(1, 4096 / S);
  // -unary padded like Q, for the register path's whole-block loads.
  RawBuffer neg_u;
  if (neg_rows) {
    neg_u = RawBuffer((size_t)P * S);
    crf_parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
      if (!u_rows) {
        neg_rows_from_labels_first(U, P, L, neg_u.data(), S, b, e);
        return;
      }
      for (int64_t p = b; p < e; ++p) {
        for (int64_t l = 0; l < L; ++l) neg_u[p * S + l] = -U[p * L + l];
        std::fill(&neg_u[p * S + L], &neg_u[p * S + S], 0.0f);
      }
    });
  }
  // Q is kept padded to whole SIMD blocks (zeros after the L labels) for the filter loops.
  RawBuffer q((size_t)P * S);
  if (q_init.has_value() && !(K == 0 && max_iter > 0)) {
    const at::Tensor q0 = q_init->contiguous();
    const float* qi = q0.data_ptr<float>();
    crf_parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        std::copy(qi + p * L, qi + (p + 1) * L, &q[p * S]);
        std::fill(&q[p * S + L], &q[p * S + S], 0.0f);
      }
    });
  } else {
    crf_parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
      if (u_rows) softmax_neg_rows(U, L, q.data(), S, b, e);
      else softmax_rows(neg_u.data(), L, q.data(), S, b, e);
    });
  }
  std::vector<LatticeView> views;
  for (int64_t k = 0; k < K; ++k) {
    views.push_back(lattice_view(offsets[k], weights[k], neighbors[k], splat_ptr[k], splat_src[k]));
  }
  std::vector<SliceSource> srcs((size_t)K);
  std::vector<const float*> pre((size_t)K);
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
    pre[k] = norm_before[k].numel() ? norm_before[k].data_ptr<float>() : nullptr;
  }
  std::vector<SplatPlan> plans((size_t)K);
  bool numbered = true;  // every lattice's vertices numbered by first occurrence
  for (int64_t k = 0; k < K && max_iter > 0; ++k) {
    plans[k] = plan_splat(views[k]);
    numbered = numbered && plans[k].m0 >= 0;
  }
  // The fused splat runs on the two halves' threads only: with more threads the unfused loop,
  // whose update uses them all, is faster.  Both give the same bits.
  const bool fused = reg_blocks && !twin && numbered && K > 0 && at::get_num_threads() <= 2;
  // Lattice buffers per kernel (three when fused, else two): every kernel splats the same Q,
  // and the slices, the update and the softmax then run in a single pass over the points.
  const int nbuf = fused ? 3 : 2;
  // (The splats write every row before the blur reads it; see splat_blur_cpu.)
  std::vector<RawBuffer> bufs((size_t)(nbuf * K));
  for (int64_t k = 0; k < K && max_iter > 0; ++k)
    for (int i = 0; i < nbuf; ++i) bufs[nbuf * k + i] = RawBuffer((size_t)views[k].M * S);
  if (fused && max_iter > 0)
    fused_iterations(srcs, pre, plans, bufs, neg_u.data(), L, S, reg_blocks, q.data(), max_iter,
                     threads);
  for (int64_t it = 0; !fused && K > 0 && it < max_iter; ++it) {
    if (it > 0) threads.resample();  // the machine's load changes while we run
    for (int64_t k = 0; k < K; ++k)
      srcs[k].vals = splat_blur_cpu(views[k], q.data(), S, pre[k], false, bufs[2 * k].data(),
                                    bufs[2 * k + 1].data(), plans[k]);
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
      if (reg_blocks) {
        update_rows_blocks(reg_blocks, srcs.data(), K, neg_u.data(), L, q.data(), b, e, nullptr,
                           nullptr);
      } else {
        std::vector<float> y((size_t)S);
        update_rows(srcs.data(), K, U, L, S, q.data(), y.data(), b, e);
      }
    });
  }
  float* qo = Q.data_ptr<float>();
  crf_parallel_for(0, P, grain, [&](int64_t b, int64_t e) {
    if (labels_first) rows_to_labels_first(q.data(), S, L, qo, P, b, e);
    else for (int64_t p = b; p < e; ++p) std::copy(&q[p * S], &q[p * S] + L, qo + p * L);
  });
  return Q;
}

}  // namespace permutohedral
}  // namespace deeplab_caffe

TORCH_LIBRARY_IMPL(deeplab_caffe, CPU, m) {
  m.impl("dense_crf_meanfield", &deeplab_caffe::permutohedral::meanfield_cpu);
}
