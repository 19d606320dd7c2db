// The CUDA twin of meanfield_cpu.cpp: ATen glue that runs the mean-field iterations on lattices
// already built, in one of three modes (a CUDA graph of one iteration replayed, the fused update
// launched directly, or one kernel per step); the kernels are meanfield_kernels.cuh's and the
// filter steps lattice_cuda.cu's.
#include "common.h"

#include "device_runtime.h"

// After device_runtime.h: the emulated build must read lattice.h's device branches.
#include "permutohedral/lattice_cuda.h"
#include "permutohedral/lattice_host.h"
#include "permutohedral/meanfield_kernels.cuh"

#include <cstdlib>
#include <string>
#include <vector>

namespace deeplab_caffe {
namespace permutohedral {

namespace {

// How the mean-field iterations run on the GPU, from DEEPLAB_CAFFE_CRF_CUDA (read on every call):
// "graph" (default) fused update and one iteration captured as a CUDA graph and replayed;
// "fused" the same launches without the graph; "plain" one kernel per step (slice, accumulate,
// softmax), no graph.  All three give the same bits; the last two are for tests and debugging.
enum class MeanfieldMode { kGraph, kFused, kPlain };

MeanfieldMode meanfield_mode() {
  const char* env = std::getenv("DEEPLAB_CAFFE_CRF_CUDA");
  const std::string s = env ? env : "";
  if (s.empty() || s == "graph") return MeanfieldMode::kGraph;
  if (s == "fused") return MeanfieldMode::kFused;
  if (s == "plain") return MeanfieldMode::kPlain;
  DC_CHECK_ARG(false, "DEEPLAB_CAFFE_CRF_CUDA must be graph, fused or plain, got '", s, "'");
  return MeanfieldMode::kGraph;
}

// Captures one iteration (launch(s) enqueues it on stream s) on a side stream -- the legacy
// default stream cannot be captured -- and replays it `times` times, ordered after the work
// already queued on `stream` and before whatever comes next on it.  Returns false with nothing
// launched when capture or instantiation fails; the caller then launches directly (and reports
// any launch error there).
template <typename Launch>
bool replay_as_graph(const Launch& launch, int64_t times, dc_rt::Stream stream,
                     c10::DeviceIndex device) {
  const dc_rt::Stream side = dc_rt::pool_stream(device);
  dc_rt::Graph graph = nullptr;
  dc_rt::GraphExec exec = nullptr;
  if (dc_rt::begin_capture(side) != dc_rt::kSuccess) {
    (void)dc_rt::get_last_error();
    return false;
  }
  bool ok = true;
  try {
    launch(side);
  } catch (...) {
    ok = false;
  }
  ok = dc_rt::end_capture(side, &graph) == dc_rt::kSuccess && ok;
  ok = ok && dc_rt::instantiate(&exec, graph) == dc_rt::kSuccess;
  if (graph != nullptr) (void)dc_rt::graph_destroy(graph);
  if (!ok) {
    if (exec != nullptr) (void)dc_rt::exec_destroy(exec);
    (void)dc_rt::get_last_error();  // the failed capture's error; the direct launches report theirs
    return false;
  }
  dc_rt::Event ready, done;
  DC_RT_CHECK(dc_rt::event_create(&ready));
  DC_RT_CHECK(dc_rt::event_create(&done));
  DC_RT_CHECK(dc_rt::event_record(ready, stream));
  DC_RT_CHECK(dc_rt::stream_wait_event(side, ready));
  for (int64_t i = 0; i < times; ++i) DC_RT_CHECK(dc_rt::graph_launch(exec, side));
  DC_RT_CHECK(dc_rt::event_record(done, side));
  DC_RT_CHECK(dc_rt::stream_wait_event(stream, done));
  // Both are released once the queued work that uses them has finished.
  DC_RT_CHECK(dc_rt::event_destroy(ready));
  DC_RT_CHECK(dc_rt::event_destroy(done));
  DC_RT_CHECK(dc_rt::exec_destroy(exec));
  return true;
}

// What the fused update reads of each kernel but its blurred values (set per iteration).
FusedSources fused_sources(const std::vector<LatticeView>& views, at::TensorList norm_after,
                           at::TensorList compat) {
  FusedSources S;
  S.K = (int)views.size();
  for (int k = 0; k < S.K; ++k) {
    S.lat[k] = views[k];
    S.post[k] = norm_after[k].numel() ? norm_after[k].data_ptr<float>() : nullptr;
    S.c[k] = compat[k].data_ptr<float>();
    S.alpha[k] = slice_alpha(views[k].d);
  }
  return S;
}

}  // namespace

at::Tensor meanfield_cuda(const at::Tensor& unary_in, const std::optional<at::Tensor>& q_init,
                          at::TensorList offsets, at::TensorList weights, at::TensorList neighbors,
                          at::TensorList splat_ptr, at::TensorList splat_src,
                          at::TensorList norm_before, at::TensorList norm_after,
                          at::TensorList compat, int64_t max_iter) {
  const int64_t K = check_meanfield(unary_in, q_init, offsets, weights, neighbors, splat_ptr,
                                    splat_src, norm_before, norm_after, compat, max_iter);
  const dc_rt::DeviceGuard guard(unary_in.device());
  dc_rt::Stream stream = dc_rt::current_stream();
  const at::Tensor unary = unary_in.contiguous();
  const int64_t P = unary.size(0), L = unary.size(1);
  at::Tensor Q = q_init.has_value() ? q_init->contiguous().clone() : at::empty_like(unary);
  if (P == 0) return Q;
  const float* U = unary.data_ptr<float>();
  float* q = Q.data_ptr<float>();
  if (!q_init.has_value() || (K == 0 && max_iter > 0)) {
    DC_LAUNCH(softmax_kernel, num_blocks(P), kThreads, 0, stream, U, q, P, L, -1.0f);
    DC_LAUNCH_CHECK();
  }
  if (max_iter == 0 || K == 0) return Q;

  const MeanfieldMode mode = meanfield_mode();
  bool all_diagonal = true;
  for (int64_t k = 0; k < K; ++k) all_diagonal = all_diagonal && compat[k].dim() == 1;
  const bool fused = mode != MeanfieldMode::kPlain && can_fuse(K, all_diagonal, L);
  const int64_t tile = fused ? fused_tile(L) : 1;  // 0 when a row does not fit shared memory

  // Every kernel keeps its own pair of lattice buffers, so all of them splat the same Q and the
  // fused update reads them all at once.
  std::vector<LatticeView> views;
  std::vector<at::Tensor> bufs;
  for (int64_t k = 0; k < K; ++k) {
    views.push_back(lattice_view(offsets[k], weights[k], neighbors[k], splat_ptr[k], splat_src[k]));
    for (int i = 0; i < 2; ++i)
      bufs.push_back(at::empty({std::max<int64_t>(views.back().M, 1), L}, unary.options()));
  }
  at::Tensor acc, msg;
  if (!fused) {
    acc = at::empty_like(unary);
    msg = at::empty_like(unary);
  }
  FusedSources S = fused ? fused_sources(views, norm_after, compat) : FusedSources{};
  const int64_t tiles = (P + tile - 1) / tile;
  const int fused_blocks = (int)std::min<int64_t>(tiles, 65535LL * 8);
  const size_t shared = (size_t)(tile * L) * sizeof(float);

  // One iteration, enqueued on stream s (the same pointers every time, so a graph of it can be
  // replayed).
  auto launch_iteration = [&](dc_rt::Stream s) {
    for (int64_t k = 0; k < K; ++k) {
      const float* pre = norm_before[k].numel() ? norm_before[k].data_ptr<float>() : nullptr;
      float* a = bufs[2 * k].data_ptr<float>();
      float* b = bufs[2 * k + 1].data_ptr<float>();
      if (fused) {
        S.vals[k] = splat_blur_cuda(views[k], q, L, pre, false, a, b, s);
        continue;
      }
      const float* post = norm_after[k].numel() ? norm_after[k].data_ptr<float>() : nullptr;
      filter_values_cuda(views[k], q, L, pre, post, false, msg.data_ptr<float>(), a, b, s);
      DC_LAUNCH(accumulate_kernel, num_blocks(P * L), kThreads, 0, s,
          U, msg.data_ptr<float>(), compat[k].data_ptr<float>(), compat[k].dim() == 2, k == 0, P,
          L, acc.data_ptr<float>());
      DC_LAUNCH_CHECK();
    }
    if (fused) {
      DC_LAUNCH(update_fused_kernel, fused_blocks, kThreads, shared, s, S, U, P, L, tile, q);
    } else {
      DC_LAUNCH(softmax_kernel, num_blocks(P), kThreads, 0, s, acc.data_ptr<float>(), q, P, L,
                1.0f);
    }
    DC_LAUNCH_CHECK();
  };

  // A graph needs a stream that is not already being captured (inside a user's torch.cuda.graph
  // the launches simply join that capture) and pays off from two iterations on.
  bool capturing = false;
  DC_RT_CHECK(dc_rt::is_capturing(stream, &capturing));
  const bool graph = mode == MeanfieldMode::kGraph && max_iter >= 2 && !capturing;
  if (!graph || !replay_as_graph(launch_iteration, max_iter, stream, unary.device().index())) {
    for (int64_t it = 0; it < max_iter; ++it) launch_iteration(stream);
  }
  return Q;
}

}  // namespace permutohedral
}  // namespace deeplab_caffe

DC_REGISTER_DEVICE_OPS(m) {
  m.impl("dense_crf_meanfield", &deeplab_caffe::permutohedral::meanfield_cuda);
}
