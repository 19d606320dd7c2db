// CUDA twin of lattice_cpu.cpp / meanfield_cpu.cpp: the lattice is built on the GPU (hash table of
// int32 keys in device memory, atomicCAS insert), once per call, and reused by every iteration.
// Vertices are numbered by the first (point, corner) entry that reaches them, exactly as the CPU's
// serial insert numbers them, and the splat gathers in entry order, so both backends sum the same
// terms in the same order.
#include "common.h"
#include "permutohedral/lattice.h"
#include "permutohedral/lattice_host.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

namespace deeplab_caffe {
namespace permutohedral {

namespace {

struct Scale {
  float s[kMaxDim];
};

__global__ void embed_kernel(const float* __restrict__ f, const int32_t* __restrict__ ids,
                             int64_t P, int d, Scale scale, float* __restrict__ weights,
                             int32_t* __restrict__ keys, int* __restrict__ bad) {
  DC_KERNEL_LOOP(p, P) {
    int rem0[kMaxDim + 1], rank[kMaxDim + 1];
    const int dp1 = d + 1;
    if (!embed_point(f + p * d, d, scale.s, rem0, rank, weights + p * dp1)) {
      atomicMax(bad, 1);
      for (int r = 0; r <= d; ++r)
        for (int i = 0; i <= d; ++i) keys[(p * dp1 + r) * dp1 + i] = 0;
      continue;
    }
    for (int r = 0; r <= d; ++r)
      corner_key(rem0, rank, d, r, ids ? ids[p] : 0, keys + (p * dp1 + r) * dp1);
  }
}

// Inserts each entry's key; table slots hold the entry id that claimed them (-1 = empty).
__global__ void insert_kernel(const int32_t* __restrict__ keys, int64_t E, int key_len,
                              int32_t* table, uint64_t mask, int32_t* __restrict__ slot_of) {
  DC_KERNEL_LOOP(e, E) {
    const int32_t* key = keys + e * key_len;
    uint64_t h = hash_key(key, key_len) & mask;
    while (true) {
      int32_t cur = table[h];
      if (cur < 0) {
        cur = atomicCAS(&table[h], -1, (int32_t)e);
        if (cur < 0) break;  // claimed
      }
      if (keys_equal(keys + (int64_t)cur * key_len, key, key_len)) break;
      h = (h + 1) & mask;
    }
    slot_of[e] = (int32_t)h;
  }
}

__global__ void first_entry_kernel(const int32_t* __restrict__ slot_of, int64_t E,
                                   int32_t* first) {
  DC_KERNEL_LOOP(e, E) { atomicMin(&first[slot_of[e]], (int32_t)e); }
}

__device__ __forceinline__ int32_t lookup(const int32_t* __restrict__ keys, int key_len,
                                          const int32_t* __restrict__ table, uint64_t mask,
                                          const int32_t* key) {
  uint64_t h = hash_key(key, key_len) & mask;
  while (true) {
    const int32_t cur = table[h];
    if (cur < 0) return -1;
    if (keys_equal(keys + (int64_t)cur * key_len, key, key_len)) return (int32_t)h;
    h = (h + 1) & mask;
  }
}

__global__ void neighbor_kernel(const int32_t* __restrict__ keys, int d,
                                const int32_t* __restrict__ table, uint64_t mask,
                                const int32_t* __restrict__ first,
                                const int32_t* __restrict__ vertex_of_entry,
                                const int32_t* __restrict__ rep_entry, int64_t M,
                                int32_t* __restrict__ nb) {
  const int key_len = d + 1;
  DC_KERNEL_LOOP(i, M * (d + 1)) {
    const int64_t v = i % M;
    const int j = (int)(i / M);
    int32_t n1[kMaxDim + 1], n2[kMaxDim + 1];
    neighbor_keys(keys + (int64_t)rep_entry[v] * key_len, d, j, n1, n2);
    const int32_t h1 = lookup(keys, key_len, table, mask, n1);
    const int32_t h2 = lookup(keys, key_len, table, mask, n2);
    nb[i * 2 + 0] = h1 < 0 ? -1 : vertex_of_entry[first[h1]];
    nb[i * 2 + 1] = h2 < 0 ? -1 : vertex_of_entry[first[h2]];
  }
}

__global__ void splat_kernel(LatticeView L, const float* __restrict__ in, int64_t C,
                             const float* __restrict__ pre, float* __restrict__ out) {
  const int dp1 = L.d + 1;
  DC_KERNEL_LOOP(i, L.M * C) {
    const int64_t v = i / C, c = i % C;
    float acc = 0.0f;
    for (int32_t k = L.splat_ptr[v]; k < L.splat_ptr[v + 1]; ++k) {
      const int32_t s = L.splat_src[k];
      const int64_t p = s / dp1;
      const float x = pre ? __fmul_rn(in[p * C + c], pre[p]) : in[p * C + c];
      acc = __fadd_rn(acc, __fmul_rn(L.weights[s], x));
    }
    out[i] = acc;
  }
}

__global__ void blur_kernel(const int32_t* __restrict__ nb, int64_t M, int64_t C,
                            const float* __restrict__ cur, float* __restrict__ nxt) {
  DC_KERNEL_LOOP(i, M * C) {
    const int64_t v = i / C, c = i % C;
    const int32_t n1 = nb[2 * v], n2 = nb[2 * v + 1];
    const float a = n1 >= 0 ? cur[n1 * C + c] : 0.0f;
    const float z = n2 >= 0 ? cur[n2 * C + c] : 0.0f;
    nxt[i] = __fadd_rn(cur[i], __fmul_rn(0.5f, __fadd_rn(a, z)));
  }
}

__global__ void slice_kernel(LatticeView L, const float* __restrict__ vals, int64_t C, float alpha,
                             const float* __restrict__ post, float* __restrict__ out) {
  const int dp1 = L.d + 1;
  DC_KERNEL_LOOP(i, L.P * C) {
    const int64_t p = i / C, c = i % C;
    float y = 0.0f;
    for (int j = 0; j < dp1; ++j) {
      const float w = L.weights[p * dp1 + j];
      const float val = vals[(int64_t)L.offsets[p * dp1 + j] * C + c];
      const float t = C <= 2 ? __fmul_rn(__fmul_rn(w, val), alpha) : __fmul_rn(__fmul_rn(w, alpha), val);
      y = __fadd_rn(y, t);
    }
    out[i] = post ? __fmul_rn(y, post[p]) : y;
  }
}

// splat (times pre) and blur into buf_a/buf_b ((M, C) each); returns the one holding the result.
float* splat_blur_cuda(const LatticeView& L, const float* in, int64_t C, const float* pre,
                       bool reverse, float* buf_a, float* buf_b, cudaStream_t stream) {
  if (L.M > 0) {
    splat_kernel<<<num_blocks(L.M * C), kThreads, 0, stream>>>(L, in, C, pre, buf_a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  float* cur = buf_a;
  float* nxt = buf_b;
  for (int step = 0; step <= L.d && L.M > 0; ++step) {
    const int j = reverse ? L.d - step : step;
    blur_kernel<<<num_blocks(L.M * C), kThreads, 0, stream>>>(L.neighbors + (int64_t)j * L.M * 2,
                                                              L.M, C, cur, nxt);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    std::swap(cur, nxt);
  }
  return cur;
}

void filter_values_cuda(const LatticeView& L, const float* in, int64_t C, const float* pre,
                        const float* post, bool reverse, float* out, float* buf_a, float* buf_b,
                        cudaStream_t stream) {
  const float* vals = splat_blur_cuda(L, in, C, pre, reverse, buf_a, buf_b, stream);
  slice_kernel<<<num_blocks(L.P * C), kThreads, 0, stream>>>(L, vals, C, slice_alpha(L.d), post,
                                                             out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// q rows = softmax(sign * x rows): the signed row copied into Q, then softmax_row (the one
// softmax of the fused update and of its host twin).
__global__ void softmax_kernel(const float* __restrict__ x, float* __restrict__ q, int64_t P,
                               int64_t L, float sign) {
  DC_KERNEL_LOOP(p, P) {
    float* qr = q + p * L;
    for (int64_t l = 0; l < L; ++l) qr[l] = sign * x[p * L + l];
    softmax_row(qr, L);
  }
}

__global__ void accumulate_kernel(const float* __restrict__ U, const float* __restrict__ msg,
                                  const float* __restrict__ compat, bool full, bool first,
                                  int64_t P, int64_t L, float* __restrict__ acc) {
  DC_KERNEL_LOOP(i, P * L) {
    const int64_t p = i / L, l = i % L;
    float a = first ? -U[i] : acc[i];
    if (full) {
      float s = 0.0f;
      for (int64_t j = 0; j < L; ++j) s = __fadd_rn(s, __fmul_rn(compat[l * L + j], msg[p * L + j]));
      a = __fsub_rn(a, s);
    } else {
      a = __fsub_rn(a, __fmul_rn(compat[l], msg[i]));
    }
    acc[i] = a;
  }
}

// The end of one iteration in one launch, for diagonal (Potts) compatibilities: every kernel's
// slice, the update a = -U - sum_k c_k * (post_k * slice_k) and the softmax of a, written into Q
// (fused_update_value and softmax_row, shared with the host twin fused_update_host).  The same
// operations in the same order as slice_kernel + accumulate_kernel + softmax_kernel (so the same
// bits), without the (P, L) message and accumulator round trips or their launches.  A block
// takes `tile` points at a time: the (point, label) elements are spread over its threads
// (neighbouring labels read neighbouring floats of a lattice row), the rows meet in shared
// memory, one thread per point takes its softmax, and the tile goes back to Q coalesced.
__global__ void update_fused_kernel(FusedSources S, const float* __restrict__ U, int64_t P,
                                    int64_t L, int64_t tile, float* __restrict__ q) {
  extern __shared__ float rows[];  // tile * L
  for (int64_t p0 = (int64_t)blockIdx.x * tile; p0 < P; p0 += (int64_t)gridDim.x * tile) {
    const int64_t np = P - p0 < tile ? P - p0 : tile, n = np * L;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      rows[i] = fused_update_value(S, U, L, L, p0 + i / L, i % L);
    __syncthreads();
    for (int64_t r = threadIdx.x; r < np; r += blockDim.x) softmax_row(rows + r * L, L);
    __syncthreads();
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) q[p0 * L + i] = rows[i];
    __syncthreads();
  }
}

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
bool replay_as_graph(const Launch& launch, int64_t times, cudaStream_t stream,
                     c10::DeviceIndex device) {
  const at::cuda::CUDAStream side = at::cuda::getStreamFromPool(false, device);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  if (cudaStreamBeginCapture(side.stream(), cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  cudaError_t err = cudaSuccess;
  try {
    launch(side.stream());
  } catch (...) {
    err = cudaErrorUnknown;
  }
  const cudaError_t end = cudaStreamEndCapture(side.stream(), &graph);
  if (err == cudaSuccess) err = end;
  if (err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
  if (graph != nullptr) (void)cudaGraphDestroy(graph);
  if (err != cudaSuccess) {
    if (exec != nullptr) (void)cudaGraphExecDestroy(exec);
    (void)cudaGetLastError();  // the failed capture's error; the direct launches report their own
    return false;
  }
  cudaEvent_t ready, done;
  C10_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  C10_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  C10_CUDA_CHECK(cudaEventRecord(ready, stream));
  C10_CUDA_CHECK(cudaStreamWaitEvent(side.stream(), ready, 0));
  for (int64_t i = 0; i < times; ++i) C10_CUDA_CHECK(cudaGraphLaunch(exec, side.stream()));
  C10_CUDA_CHECK(cudaEventRecord(done, side.stream()));
  C10_CUDA_CHECK(cudaStreamWaitEvent(stream, done, 0));
  // Both are released once the queued work that uses them has finished.
  C10_CUDA_CHECK(cudaEventDestroy(ready));
  C10_CUDA_CHECK(cudaEventDestroy(done));
  C10_CUDA_CHECK(cudaGraphExecDestroy(exec));
  return true;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> build_cuda(
    const at::Tensor& features_in, const std::optional<at::Tensor>& image_ids_in) {
  check_build_args(features_in, image_ids_in);
  const c10::cuda::CUDAGuard guard(features_in.device());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor features = features_in.contiguous();
  const int64_t P = features.size(0);
  const int d = (int)features.size(1), dp1 = d + 1, key_len = d + 1;
  const int64_t E = P * dp1;
  at::Tensor image_ids;
  if (image_ids_in.has_value()) image_ids = image_ids_in->to(at::kInt).contiguous();
  auto opt_i = features.options().dtype(at::kInt);
  at::Tensor weights = at::empty({P, dp1}, features.options());
  if (P == 0)
    return {at::empty({0, dp1}, opt_i), weights, at::empty({dp1, 0, 2}, opt_i),
            at::zeros({1}, opt_i), at::empty({0}, opt_i)};

  Scale scale;
  scale_factors(d, scale.s);
  at::Tensor keys = at::empty({E, key_len}, opt_i);
  at::Tensor bad = at::zeros({1}, opt_i);
  embed_kernel<<<num_blocks(P), kThreads, 0, stream>>>(
      features.data_ptr<float>(), image_ids.defined() ? image_ids.data_ptr<int32_t>() : nullptr, P,
      d, scale, weights.data_ptr<float>(), keys.data_ptr<int32_t>(), bad.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // `bad` is read after nonzero() below, which waits for the GPU anyway: one host sync, not two.
  // (A bad point's keys are zeros meanwhile, which the insert handles like any key.)

  int64_t cap = 1024;
  while (cap < 2 * E) cap <<= 1;
  const uint64_t mask = (uint64_t)cap - 1;
  at::Tensor table = at::full({cap}, -1, opt_i);
  at::Tensor slot_of = at::empty({E}, opt_i);
  insert_kernel<<<num_blocks(E), kThreads, 0, stream>>>(keys.data_ptr<int32_t>(), E, key_len,
                                                        table.data_ptr<int32_t>(), mask,
                                                        slot_of.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  at::Tensor first = at::full({cap}, INT_MAX, opt_i);
  first_entry_kernel<<<num_blocks(E), kThreads, 0, stream>>>(slot_of.data_ptr<int32_t>(), E,
                                                             first.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  // Entry e represents its vertex iff it is the first entry with that key; numbering the
  // representatives in entry order reproduces the CPU's serial insert order.
  const at::Tensor rep = first.index_select(0, slot_of.to(at::kLong));  // (E,) first entry per key
  const at::Tensor is_rep = rep.eq(at::arange(E, rep.options()));
  const at::Tensor vertex_of_entry = (is_rep.to(at::kInt).cumsum(0, at::kInt) - 1).to(at::kInt);
  const at::Tensor rep_entry = is_rep.nonzero().view({-1}).to(at::kInt).contiguous();
  const int64_t M = rep_entry.size(0);
  DC_CHECK_ARG(bad.item<int32_t>() == 0, "features: a point has a non-finite or too large ",
               "coordinate for the lattice (feature / std must stay below ", kMaxCoord / dp1, ")");
  const at::Tensor offsets_flat = vertex_of_entry.index_select(0, rep.to(at::kLong)).contiguous();
  at::Tensor offsets = offsets_flat.view({P, dp1});

  at::Tensor neighbors = at::empty({dp1, M, 2}, opt_i);
  if (M > 0) {
    neighbor_kernel<<<num_blocks(M * dp1), kThreads, 0, stream>>>(
        keys.data_ptr<int32_t>(), d, table.data_ptr<int32_t>(), mask, first.data_ptr<int32_t>(),
        vertex_of_entry.contiguous().data_ptr<int32_t>(), rep_entry.data_ptr<int32_t>(), M,
        neighbors.data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  const at::Tensor off_long = offsets_flat.to(at::kLong);
  const at::Tensor splat_src =
      std::get<1>(at::sort(off_long, /*stable=*/true, /*dim=*/0, /*descending=*/false))
          .to(at::kInt)
          .contiguous();
  const at::Tensor counts = at::bincount(off_long, {}, M);
  at::Tensor splat_ptr = at::zeros({M + 1}, opt_i);
  splat_ptr.narrow(0, 1, M).copy_(counts.cumsum(0));
  return {offsets, weights, neighbors, splat_ptr, splat_src};
}

at::Tensor filter_cuda(const at::Tensor& values_in, const at::Tensor& offsets,
                       const at::Tensor& weights, const at::Tensor& blur_neighbors,
                       const at::Tensor& splat_ptr, const at::Tensor& splat_src, bool reverse) {
  check_lattice(offsets, weights, blur_neighbors, splat_ptr, splat_src, "");
  check_filter_values(values_in, offsets);
  const c10::cuda::CUDAGuard guard(values_in.device());
  const at::Tensor values = values_in.contiguous();
  const int64_t C = values.size(1);
  at::Tensor out = at::empty_like(values);
  const LatticeView L = lattice_view(offsets, weights, blur_neighbors, splat_ptr, splat_src);
  if (L.P == 0 || C == 0) return out.zero_();
  at::Tensor a = at::empty({std::max<int64_t>(L.M, 1), C}, values.options());
  at::Tensor b = at::empty_like(a);
  filter_values_cuda(L, values.data_ptr<float>(), C, nullptr, nullptr, reverse,
                     out.data_ptr<float>(), a.data_ptr<float>(), b.data_ptr<float>(),
                     at::cuda::getCurrentCUDAStream());
  return out;
}

at::Tensor meanfield_cuda(const at::Tensor& unary_in, const std::optional<at::Tensor>& q_init,
                          at::TensorList offsets, at::TensorList weights, at::TensorList neighbors,
                          at::TensorList splat_ptr, at::TensorList splat_src,
                          at::TensorList norm_before, at::TensorList norm_after,
                          at::TensorList compat, int64_t max_iter) {
  const int64_t K = check_meanfield(unary_in, q_init, offsets, weights, neighbors, splat_ptr,
                                    splat_src, norm_before, norm_after, compat, max_iter);
  const c10::cuda::CUDAGuard guard(unary_in.device());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor unary = unary_in.contiguous();
  const int64_t P = unary.size(0), L = unary.size(1);
  at::Tensor Q = q_init.has_value() ? q_init->contiguous().clone() : at::empty_like(unary);
  if (P == 0) return Q;
  const float* U = unary.data_ptr<float>();
  float* q = Q.data_ptr<float>();
  if (!q_init.has_value() || (K == 0 && max_iter > 0)) {
    softmax_kernel<<<num_blocks(P), kThreads, 0, stream>>>(U, q, P, L, -1.0f);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (max_iter == 0 || K == 0) return Q;

  const MeanfieldMode mode = meanfield_mode();
  bool all_diagonal = true;
  for (int64_t k = 0; k < K; ++k) all_diagonal = all_diagonal && compat[k].dim() == 1;
  const int64_t tile = fused_tile(L);
  const bool fused = mode != MeanfieldMode::kPlain && all_diagonal && K <= kMaxFused && tile >= 1;

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
  FusedSources S;
  S.K = (int)K;
  for (int64_t k = 0; k < K && fused; ++k) {
    S.lat[k] = views[k];
    S.post[k] = norm_after[k].numel() ? norm_after[k].data_ptr<float>() : nullptr;
    S.c[k] = compat[k].data_ptr<float>();
    S.alpha[k] = slice_alpha(views[k].d);
  }
  const int64_t tiles = (P + tile - 1) / tile;
  const int fused_blocks = (int)std::min<int64_t>(tiles, 65535LL * 8);
  const size_t shared = (size_t)(tile * L) * sizeof(float);

  // One iteration, enqueued on stream s (the same pointers every time, so a graph of it can be
  // replayed).
  auto launch_iteration = [&](cudaStream_t s) {
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
      accumulate_kernel<<<num_blocks(P * L), kThreads, 0, s>>>(
          U, msg.data_ptr<float>(), compat[k].data_ptr<float>(), compat[k].dim() == 2, k == 0, P,
          L, acc.data_ptr<float>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    if (fused) {
      update_fused_kernel<<<fused_blocks, kThreads, shared, s>>>(S, U, P, L, tile, q);
    } else {
      softmax_kernel<<<num_blocks(P), kThreads, 0, s>>>(acc.data_ptr<float>(), q, P, L, 1.0f);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };

  // A graph needs a stream that is not already being captured (inside a user's torch.cuda.graph
  // the launches simply join that capture) and pays off from two iterations on.
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  C10_CUDA_CHECK(cudaStreamIsCapturing(stream, &capturing));
  const bool graph = mode == MeanfieldMode::kGraph && max_iter >= 2 &&
                     capturing == cudaStreamCaptureStatusNone;
  if (!graph || !replay_as_graph(launch_iteration, max_iter, stream, unary.device().index())) {
    for (int64_t it = 0; it < max_iter; ++it) launch_iteration(stream);
  }
  return Q;
}

}  // namespace permutohedral
}  // namespace deeplab_caffe

TORCH_LIBRARY_IMPL(deeplab_caffe, CUDA, m) {
  m.impl("permutohedral_build", &deeplab_caffe::permutohedral::build_cuda);
  m.impl("permutohedral_filter", &deeplab_caffe::permutohedral::filter_cuda);
  m.impl("dense_crf_meanfield", &deeplab_caffe::permutohedral::meanfield_cuda);
}
