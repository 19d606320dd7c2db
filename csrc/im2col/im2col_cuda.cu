// Glue of the CUDA twin of the hole im2col / col2im kernels (im2col_kernels.cuh), and the device
// registrations of the im2col-based ops.  Semantics are identical to im2col_cpu.cpp (the
// reference in the tests).  Built by nvcc for CUDA tensors, and by the emulated build for CPU
// tensors (device_runtime.h).
#include "im2col/im2col.h"

#include "device_runtime.h"

#include "im2col/im2col_kernels.cuh"

namespace deeplab_caffe {

void im2col_cuda(const at::Tensor& x, at::Tensor& cols, const HoleGeom& g, int64_t row0,
                 int64_t rows) {
  const int64_t total = x.size(0) * g.channels * rows * g.out_w;
  if (total == 0) return;
  const dc_rt::Stream stream = dc_rt::current_stream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "im2col_hole_cuda", [&] {
    DC_LAUNCH(im2col_hole_kernel<scalar_t>, num_blocks(total), kThreads, 0, stream,
              x.data_ptr<scalar_t>(), cols.data_ptr<scalar_t>(), total, g, row0, rows);
  });
  DC_LAUNCH_CHECK();
}

void col2im_cuda(const at::Tensor& cols, at::Tensor& x, const HoleGeom& g, int64_t row0,
                 int64_t rows) {
  const int64_t ext_h = g.hole_h * (g.kernel_h - 1) + 1;
  const int64_t h_lo = std::max<int64_t>(0, row0 * g.stride_h - g.pad_h);
  const int64_t h_hi =
      std::min<int64_t>(g.height, (row0 + rows - 1) * g.stride_h - g.pad_h + ext_h);
  if (h_hi <= h_lo) return;
  const int64_t nh = h_hi - h_lo;
  const int64_t total = x.size(0) * g.channels * nh * g.width;
  if (total == 0) return;
  const dc_rt::Stream stream = dc_rt::current_stream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "col2im_hole_cuda", [&] {
    DC_LAUNCH(col2im_hole_kernel<scalar_t>, num_blocks(total), kThreads, 0, stream,
              cols.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), total, g, h_lo, nh, row0, rows);
  });
  DC_LAUNCH_CHECK();
}

namespace {

const ColBackend& cuda_backend() {
  // A column block that stays within the L2 cache (50 MB on H100) between the im2col write and
  // the GEMM read.
  static const ColBackend be{im2col_cuda, col2im_cuda, col_budget_bytes(32)};
  return be;
}

at::Tensor im2col_hole_cuda_op(const at::Tensor& x, at::IntArrayRef kernel, at::IntArrayRef pad,
                               at::IntArrayRef stride, at::IntArrayRef hole) {
  const dc_rt::DeviceGuard guard(x.device());
  return im2col_hole_impl(x, kernel, pad, stride, hole, cuda_backend());
}

at::Tensor col2im_hole_cuda_op(const at::Tensor& cols, at::IntArrayRef size,
                               at::IntArrayRef kernel, at::IntArrayRef pad,
                               at::IntArrayRef stride, at::IntArrayRef hole) {
  const dc_rt::DeviceGuard guard(cols.device());
  return col2im_hole_impl(cols, size, kernel, pad, stride, hole, cuda_backend());
}

at::Tensor conv2d_hole_cuda_op(const at::Tensor& x, const at::Tensor& weight,
                               const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                               at::IntArrayRef pad, at::IntArrayRef hole, int64_t group) {
  const dc_rt::DeviceGuard guard(x.device());
  return conv2d_hole_impl(x, weight, bias, stride, pad, hole, group, cuda_backend());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_hole_backward_cuda_op(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef pad, at::IntArrayRef hole, int64_t group,
    std::array<bool, 3> output_mask) {
  const dc_rt::DeviceGuard guard(x.device());
  return conv2d_hole_backward_impl(grad_out, x, weight, stride, pad, hole, group, output_mask,
                                   cuda_backend());
}

}  // namespace

DC_REGISTER_DEVICE_OPS(m) {
  m.impl("im2col_hole", &im2col_hole_cuda_op);
  m.impl("col2im_hole", &col2im_hole_cuda_op);
  m.impl("conv2d_hole", &conv2d_hole_cuda_op);
  m.impl("conv2d_hole_backward", &conv2d_hole_backward_cuda_op);
}

}  // namespace deeplab_caffe
