// The CUDA twin of meanfield_backward_cpu.cpp: ATen glue that runs the mean field's backward on
// the forward's lattices, the last iteration first: each kernel's splat and reversed blur of
// na_k * g (lattice_cuda.cu's filter steps), then meanfield_backward_kernels.cuh's steps.
#include "common.h"

#include "device_runtime.h"

// After device_runtime.h: the emulated build must read lattice.h's device branches.
#include "permutohedral/lattice_cuda.h"
#include "permutohedral/lattice_host.h"
#include "permutohedral/meanfield_backward_kernels.cuh"

#include <tuple>
#include <vector>

namespace deeplab_caffe {
namespace permutohedral {

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>> meanfield_backward_cuda(
    const at::Tensor& grad_logits, at::TensorList q_history_in, at::TensorList offsets,
    at::TensorList weights, at::TensorList neighbors, at::TensorList splat_ptr,
    at::TensorList splat_src, at::TensorList norm_before, at::TensorList norm_after,
    at::TensorList compat) {
  check_meanfield_backward(grad_logits, q_history_in);
  const int64_t K = check_meanfield(grad_logits, std::nullopt, offsets, weights, neighbors,
                                    splat_ptr, splat_src, norm_before, norm_after, compat, 1);
  const dc_rt::DeviceGuard guard(grad_logits.device());
  dc_rt::Stream stream = dc_rt::current_stream();
  const int64_t T = (int64_t)q_history_in.size(), P = grad_logits.size(0),
                L = grad_logits.size(1);
  at::Tensor grad_q0 = at::zeros({P, L}, grad_logits.options());
  at::Tensor grad_unary = at::zeros({P, L}, grad_logits.options());
  std::vector<at::Tensor> grad_compat;
  for (int64_t k = 0; k < K; ++k) grad_compat.push_back(at::zeros_like(compat[k]));
  if (P == 0) return {grad_q0, grad_unary, grad_compat};
  std::vector<at::Tensor> q_history;
  for (const at::Tensor& q : q_history_in) q_history.push_back(q.contiguous());
  at::Tensor g = grad_logits.contiguous().clone();  // dL/da_t, then dL/dQ_t, in place
  at::Tensor prod = at::empty({P, L}, grad_logits.options());
  const int64_t blocks = (P + kGradCompatBlock - 1) / kGradCompatBlock;
  std::vector<LatticeView> views;
  std::vector<at::Tensor> bufs, r_rows, parts;
  for (int64_t k = 0; k < K; ++k) {
    views.push_back(lattice_view(offsets[k], weights[k], neighbors[k], splat_ptr[k], splat_src[k]));
    for (int i = 0; i < 2; ++i)
      bufs.push_back(at::empty({std::max<int64_t>(views.back().M, 1), L}, g.options()));
    const bool full = compat[k].dim() == 2;
    r_rows.push_back(full ? at::empty({P, L}, g.options()) : at::Tensor());
    parts.push_back(full ? at::Tensor() : at::zeros({blocks, L}, g.options().dtype(at::kDouble)));
  }
  float* gp = g.data_ptr<float>();
  for (int64_t t = T - 1; t >= 0; --t) {
    std::vector<const float*> vals((size_t)K);
    for (int64_t k = 0; k < K; ++k) {
      const float* na = norm_after[k].numel() ? norm_after[k].data_ptr<float>() : nullptr;
      vals[k] = splat_blur_cuda(views[k], gp, L, na, true, bufs[2 * k].data_ptr<float>(),
                                bufs[2 * k + 1].data_ptr<float>(), stream);
    }
    DC_LAUNCH(backward_start_kernel, num_blocks(P * L), kThreads, 0, stream, gp,
              grad_unary.data_ptr<float>(), P * L);
    DC_LAUNCH_CHECK();
    const float* q = q_history[t].data_ptr<float>();
    for (int64_t k = 0; k < K; ++k) {
      const float* nb = norm_before[k].numel() ? norm_before[k].data_ptr<float>() : nullptr;
      const bool full = compat[k].dim() == 2;
      float* r = full ? r_rows[k].data_ptr<float>() : nullptr;
      DC_LAUNCH(backward_slice_kernel, num_blocks(P * L), kThreads, 0, stream, views[k], vals[k],
                slice_alpha(views[k].d), nb, compat[k].data_ptr<float>(), q, L, gp,
                prod.data_ptr<float>(), r);
      DC_LAUNCH_CHECK();
      if (full) {
        DC_LAUNCH(backward_matrix_kernel, num_blocks(P * L), kThreads, 0, stream, r,
                  compat[k].data_ptr<float>(), nb, P, L, gp);
        DC_LAUNCH_CHECK();
        at::Tensor qt = nb ? q_history[t] * norm_before[k].unsqueeze(1) : q_history[t];
        grad_compat[k].sub_(at::mm(r_rows[k].t(), qt));
      } else {
        DC_LAUNCH(backward_block_sums_kernel, num_blocks(blocks * L), kThreads, 0, stream,
                  prod.data_ptr<float>(), P, L, blocks, L, parts[k].data_ptr<double>());
        DC_LAUNCH_CHECK();
      }
    }
    if (t > 0) {
      DC_LAUNCH(backward_softmax_kernel, num_blocks(P), kThreads, 0, stream, q, P, L, gp);
      DC_LAUNCH_CHECK();
    }
  }
  grad_q0.copy_(g);
  for (int64_t k = 0; k < K; ++k) {
    if (compat[k].dim() == 2) continue;
    DC_LAUNCH(backward_compat_total_kernel, num_blocks(L), kThreads, 0, stream,
              parts[k].data_ptr<double>(), blocks, L, L, grad_compat[k].data_ptr<float>());
    DC_LAUNCH_CHECK();
  }
  return {grad_q0, grad_unary, grad_compat};
}

}  // namespace permutohedral
}  // namespace deeplab_caffe

DC_REGISTER_DEVICE_OPS(m) {
  m.impl("dense_crf_meanfield_backward",
         &deeplab_caffe::permutohedral::meanfield_backward_cuda);
}
