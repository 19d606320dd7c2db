// CPU float64 permutohedral filter (see filter_f64.h): torch.ops.deeplab_caffe.
// permutohedral_filter_f64, for double-precision gradient checks of the filter and the mean field.
#include "common.h"
#include "permutohedral/filter_f64.h"
#include "permutohedral/lattice_host.h"

#include <ATen/Parallel.h>

#include <utility>

namespace deeplab_caffe {
namespace permutohedral {

at::Tensor filter_f64_cpu(const at::Tensor& values_in, const at::Tensor& offsets,
                          const at::Tensor& weights, const at::Tensor& blur_neighbors,
                          const at::Tensor& splat_ptr, const at::Tensor& splat_src, bool reverse) {
  check_lattice(offsets, weights, blur_neighbors, splat_ptr, splat_src, "");
  check_filter_values(values_in, offsets, at::kDouble);
  const at::Tensor values = values_in.contiguous();
  const int64_t C = values.size(1);
  at::Tensor out = at::zeros_like(values);
  const LatticeView L = lattice_view(offsets, weights, blur_neighbors, splat_ptr, splat_src);
  if (L.P == 0 || C == 0 || L.M == 0) return out;
  at::Tensor a = at::empty({L.M, C}, values.options()), b = at::empty_like(a);
  const double* in = values.data_ptr<double>();
  double* cur = a.data_ptr<double>();
  double* nxt = b.data_ptr<double>();
  at::parallel_for(0, L.M * C, 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) cur[i] = splat_vertex_f64(L, in, C, i / C, i % C);
  });
  for (int step = 0; step <= L.d; ++step) {
    const int32_t* nb = L.neighbors + (int64_t)(reverse ? L.d - step : step) * L.M * 2;
    at::parallel_for(0, L.M * C, 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) nxt[i] = blur_elem_f64(nb, cur, C, i / C, i % C);
    });
    std::swap(cur, nxt);
  }
  const double alpha = slice_alpha(L.d);
  double* y = out.data_ptr<double>();
  at::parallel_for(0, L.P * C, 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = slice_elem_f64(L, cur, C, alpha, i / C, i % C);
  });
  return out;
}

}  // namespace permutohedral
}  // namespace deeplab_caffe

TORCH_LIBRARY_IMPL(deeplab_caffe, CPU, m) {
  m.impl("permutohedral_filter_f64", &deeplab_caffe::permutohedral::filter_f64_cpu);
}
