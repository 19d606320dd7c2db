// CUDA float64 permutohedral filter (see filter_f64.h), the twin of filter_f64_cpu.cpp: one thread
// per (vertex or point, channel), each step one launch.
#include "common.h"
#include "device_runtime.h"
// After device_runtime.h: the emulated build must read lattice.h's device branches.
#include "permutohedral/filter_f64.h"
#include "permutohedral/lattice_host.h"

#include <utility>

namespace deeplab_caffe {
namespace permutohedral {

__global__ void splat_f64_kernel(LatticeView L, const double* __restrict__ in, int64_t C,
                                 double* __restrict__ out) {
  DC_KERNEL_LOOP(i, L.M * C) { out[i] = splat_vertex_f64(L, in, C, i / C, i % C); }
}

__global__ void blur_f64_kernel(const int32_t* __restrict__ nb, int64_t M, int64_t C,
                                const double* __restrict__ cur, double* __restrict__ nxt) {
  DC_KERNEL_LOOP(i, M * C) { nxt[i] = blur_elem_f64(nb, cur, C, i / C, i % C); }
}

__global__ void slice_f64_kernel(LatticeView L, const double* __restrict__ vals, int64_t C,
                                 double alpha, double* __restrict__ out) {
  DC_KERNEL_LOOP(i, L.P * C) { out[i] = slice_elem_f64(L, vals, C, alpha, i / C, i % C); }
}

at::Tensor filter_f64_cuda(const at::Tensor& values_in, const at::Tensor& offsets,
                           const at::Tensor& weights, const at::Tensor& blur_neighbors,
                           const at::Tensor& splat_ptr, const at::Tensor& splat_src,
                           bool reverse) {
  check_lattice(offsets, weights, blur_neighbors, splat_ptr, splat_src, "");
  check_filter_values(values_in, offsets, at::kDouble);
  const dc_rt::DeviceGuard guard(values_in.device());
  dc_rt::Stream stream = dc_rt::current_stream();
  const at::Tensor values = values_in.contiguous();
  const int64_t C = values.size(1);
  at::Tensor out = at::zeros_like(values);
  const LatticeView L = lattice_view(offsets, weights, blur_neighbors, splat_ptr, splat_src);
  if (L.P == 0 || C == 0 || L.M == 0) return out;
  at::Tensor a = at::empty({L.M, C}, values.options()), b = at::empty_like(a);
  double* cur = a.data_ptr<double>();
  double* nxt = b.data_ptr<double>();
  DC_LAUNCH(splat_f64_kernel, num_blocks(L.M * C), kThreads, 0, stream, L,
            (const double*)values.data_ptr<double>(), C, cur);
  DC_LAUNCH_CHECK();
  for (int step = 0; step <= L.d; ++step) {
    const int32_t* nb = L.neighbors + (int64_t)(reverse ? L.d - step : step) * L.M * 2;
    DC_LAUNCH(blur_f64_kernel, num_blocks(L.M * C), kThreads, 0, stream, nb, L.M, C,
              (const double*)cur, nxt);
    DC_LAUNCH_CHECK();
    std::swap(cur, nxt);
  }
  DC_LAUNCH(slice_f64_kernel, num_blocks(L.P * C), kThreads, 0, stream, L, (const double*)cur, C,
            (double)slice_alpha(L.d), out.data_ptr<double>());
  DC_LAUNCH_CHECK();
  return out;
}

}  // namespace permutohedral
}  // namespace deeplab_caffe

DC_REGISTER_DEVICE_OPS(m) {
  m.impl("permutohedral_filter_f64", &deeplab_caffe::permutohedral::filter_f64_cuda);
}
