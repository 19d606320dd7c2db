// The CUDA twin of lattice_build_cpu.cpp and lattice_cpu.cpp: ATen glue that builds a lattice on
// the GPU (hash table of int32 keys in device memory, atomicCAS insert, once per call) and filters
// with it; the kernels are lattice_kernels.cuh's, and the mean-field glue (meanfield_cuda.cu)
// reuses the filter steps.
#include "common.h"

#include "device_runtime.h"

// After device_runtime.h: the emulated build must read lattice.h's device branches.
#include "permutohedral/lattice_cuda.h"
#include "permutohedral/lattice_host.h"
#include "permutohedral/lattice_kernels.cuh"

#include <climits>

namespace deeplab_caffe {
namespace permutohedral {

float* splat_blur_cuda(const LatticeView& L, const float* in, int64_t C, const float* pre,
                       bool reverse, float* buf_a, float* buf_b, dc_rt::Stream stream) {
  if (L.M > 0) {
    DC_LAUNCH(splat_kernel, num_blocks(L.M * C), kThreads, 0, stream, L, in, C, pre, buf_a);
    DC_LAUNCH_CHECK();
  }
  float* cur = buf_a;
  float* nxt = buf_b;
  for (int step = 0; step <= L.d && L.M > 0; ++step) {
    const int j = reverse ? L.d - step : step;
    DC_LAUNCH(blur_kernel, num_blocks(L.M * C), kThreads, 0, stream,
              L.neighbors + (int64_t)j * L.M * 2, L.M, C, cur, nxt);
    DC_LAUNCH_CHECK();
    std::swap(cur, nxt);
  }
  return cur;
}

void filter_values_cuda(const LatticeView& L, const float* in, int64_t C, const float* pre,
                        const float* post, bool reverse, float* out, float* buf_a, float* buf_b,
                        dc_rt::Stream stream) {
  const float* vals = splat_blur_cuda(L, in, C, pre, reverse, buf_a, buf_b, stream);
  DC_LAUNCH(slice_kernel, num_blocks(L.P * C), kThreads, 0, stream, L, vals, C, slice_alpha(L.d),
            post, out);
  DC_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> build_cuda(
    const at::Tensor& features_in, const std::optional<at::Tensor>& image_ids_in) {
  check_build_args(features_in, image_ids_in);
  // Before anything is allocated or copied (features may be a broadcast view).
  const int64_t entries = features_in.size(0) * (features_in.size(1) + 1);
  DC_CHECK_ARG(hash_capacity(entries) <= kMaxHashSlots, "features: ", features_in.size(0),
               " points of d = ", features_in.size(1), " make ", entries,
               " lattice entries; the CUDA lattice's hash table holds at most ",
               kMaxHashSlots / 2, " (2^30)");
  const dc_rt::DeviceGuard guard(features_in.device());
  dc_rt::Stream stream = dc_rt::current_stream();
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
  DC_LAUNCH(embed_kernel, num_blocks(P), kThreads, 0, stream,
      features.data_ptr<float>(), image_ids.defined() ? image_ids.data_ptr<int32_t>() : nullptr, P,
      d, scale, weights.data_ptr<float>(), keys.data_ptr<int32_t>(), bad.data_ptr<int32_t>());
  DC_LAUNCH_CHECK();
  // `bad` is read after nonzero() below, which waits for the GPU anyway: one host sync, not two.
  // (A bad point's keys are zeros meanwhile, which the insert handles like any key.)

  const int64_t cap = hash_capacity(E);
  const uint64_t mask = (uint64_t)cap - 1;
  at::Tensor table = at::full({cap}, -1, opt_i);
  at::Tensor slot_of = at::empty({E}, opt_i);
  DC_LAUNCH(insert_kernel, num_blocks(E), kThreads, 0, stream, keys.data_ptr<int32_t>(), E,
            key_len, table.data_ptr<int32_t>(), mask, slot_of.data_ptr<int32_t>());
  DC_LAUNCH_CHECK();
  at::Tensor first = at::full({cap}, INT_MAX, opt_i);
  DC_LAUNCH(first_entry_kernel, num_blocks(E), kThreads, 0, stream, slot_of.data_ptr<int32_t>(),
            E, first.data_ptr<int32_t>());
  DC_LAUNCH_CHECK();

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
    DC_LAUNCH(neighbor_kernel, num_blocks(M * dp1), kThreads, 0, stream,
        keys.data_ptr<int32_t>(), d, table.data_ptr<int32_t>(), mask, first.data_ptr<int32_t>(),
        vertex_of_entry.contiguous().data_ptr<int32_t>(), rep_entry.data_ptr<int32_t>(), M,
        neighbors.data_ptr<int32_t>());
    DC_LAUNCH_CHECK();
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
  const dc_rt::DeviceGuard guard(values_in.device());
  const at::Tensor values = values_in.contiguous();
  const int64_t C = values.size(1);
  at::Tensor out = at::empty_like(values);
  const LatticeView L = lattice_view(offsets, weights, blur_neighbors, splat_ptr, splat_src);
  if (L.P == 0 || C == 0) return out.zero_();
  at::Tensor a = at::empty({std::max<int64_t>(L.M, 1), C}, values.options());
  at::Tensor b = at::empty_like(a);
  filter_values_cuda(L, values.data_ptr<float>(), C, nullptr, nullptr, reverse,
                     out.data_ptr<float>(), a.data_ptr<float>(), b.data_ptr<float>(),
                     dc_rt::current_stream());
  return out;
}

}  // namespace permutohedral
}  // namespace deeplab_caffe

DC_REGISTER_DEVICE_OPS(m) {
  m.impl("permutohedral_build", &deeplab_caffe::permutohedral::build_cuda);
  m.impl("permutohedral_filter", &deeplab_caffe::permutohedral::filter_cuda);
}
