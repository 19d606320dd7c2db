// CUDA twin of the hole im2col / col2im kernels, and the CUDA registrations of the im2col-based
// ops.  Semantics are identical to im2col_cpu.cpp (the reference in the tests).
#include "im2col/im2col.h"

#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

namespace deeplab_caffe {

namespace {

// One thread per (image, channel, output row of the block, output column) writes that output
// position's kernel_h * kernel_w taps; consecutive threads write consecutive columns, so the
// stores coalesce.
template <typename T>
__global__ void im2col_hole_kernel(const T* __restrict__ x, T* __restrict__ cols, int64_t total,
                                   int64_t channels, int64_t height, int64_t width,
                                   int kernel_h, int kernel_w, int pad_h, int pad_w,
                                   int stride_h, int stride_w, int hole_h, int hole_w,
                                   int64_t out_w, int64_t row0, int64_t rows) {
  const int64_t lc = rows * out_w;
  const int taps = kernel_h * kernel_w;
  DC_KERNEL_LOOP(idx, total) {
    const int64_t ow = idx % out_w;
    const int64_t ohl = (idx / out_w) % rows;
    const int64_t nc = idx / lc;  // n * channels + c
    const int64_t ih0 = (ohl + row0) * stride_h - pad_h;
    const int64_t iw0 = ow * stride_w - pad_w;
    const T* src = x + nc * height * width;
    T* dst = cols + nc * taps * lc + ohl * out_w + ow;
    for (int i = 0; i < kernel_h; ++i) {
      const int64_t ih = ih0 + (int64_t)i * hole_h;
      const bool row_in = ih >= 0 && ih < height;
      for (int j = 0; j < kernel_w; ++j) {
        const int64_t iw = iw0 + (int64_t)j * hole_w;
        *dst = (row_in && iw >= 0 && iw < width) ? src[ih * width + iw] : T(0);
        dst += lc;
      }
    }
  }
}

// Deterministic col2im: gather form, one thread per input pixel of the rows the block touches;
// each thread sums the taps that read its pixel, so there are no atomics and the summation
// order is fixed.  The result is added to x (the convolution backward accumulates blocks).
template <typename T>
__global__ void col2im_hole_kernel(const T* __restrict__ cols, T* __restrict__ x, int64_t total,
                                   int64_t channels, int64_t height, int64_t width, int64_t h_lo,
                                   int64_t nh, int kernel_h, int kernel_w, int pad_h, int pad_w,
                                   int stride_h, int stride_w, int hole_h, int hole_w,
                                   int64_t out_w, int64_t row0, int64_t rows) {
  const int64_t lc = rows * out_w;
  const int taps = kernel_h * kernel_w;
  DC_KERNEL_LOOP(idx, total) {
    const int64_t w = idx % width;
    const int64_t h = h_lo + (idx / width) % nh;
    const int64_t nc = idx / (width * nh);
    const T* cbase = cols + nc * taps * lc;
    T acc = T(0);
    for (int i = 0; i < kernel_h; ++i) {
      const int64_t hp = h + pad_h - (int64_t)i * hole_h;
      if (hp < 0 || hp % stride_h != 0) continue;
      const int64_t oh = hp / stride_h - row0;
      if (oh < 0 || oh >= rows) continue;
      for (int j = 0; j < kernel_w; ++j) {
        const int64_t wp = w + pad_w - (int64_t)j * hole_w;
        if (wp < 0 || wp % stride_w != 0) continue;
        const int64_t ow = wp / stride_w;
        if (ow >= out_w) continue;
        acc += cbase[(i * kernel_w + j) * lc + oh * out_w + ow];
      }
    }
    x[nc * height * width + h * width + w] += acc;
  }
}

}  // namespace

void im2col_cuda(const at::Tensor& x, at::Tensor& cols, const HoleGeom& g, int64_t row0,
                 int64_t rows) {
  const int64_t total = x.size(0) * g.channels * rows * g.out_w;
  if (total == 0) return;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "im2col_hole_cuda", [&] {
    im2col_hole_kernel<scalar_t><<<num_blocks(total), kThreads, 0, stream>>>(
        x.data_ptr<scalar_t>(), cols.data_ptr<scalar_t>(), total, g.channels, g.height,
        g.width, (int)g.kernel_h, (int)g.kernel_w, (int)g.pad_h, (int)g.pad_w, (int)g.stride_h,
        (int)g.stride_w, (int)g.hole_h, (int)g.hole_w, g.out_w, row0, rows);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
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
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "col2im_hole_cuda", [&] {
    col2im_hole_kernel<scalar_t><<<num_blocks(total), kThreads, 0, stream>>>(
        cols.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), total, g.channels, g.height,
        g.width, h_lo, nh, (int)g.kernel_h, (int)g.kernel_w, (int)g.pad_h, (int)g.pad_w,
        (int)g.stride_h, (int)g.stride_w, (int)g.hole_h, (int)g.hole_w, g.out_w, row0, rows);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
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
  c10::cuda::CUDAGuard guard(x.device());
  return im2col_hole_impl(x, kernel, pad, stride, hole, cuda_backend());
}

at::Tensor col2im_hole_cuda_op(const at::Tensor& cols, at::IntArrayRef size,
                               at::IntArrayRef kernel, at::IntArrayRef pad,
                               at::IntArrayRef stride, at::IntArrayRef hole) {
  c10::cuda::CUDAGuard guard(cols.device());
  return col2im_hole_impl(cols, size, kernel, pad, stride, hole, cuda_backend());
}

at::Tensor conv2d_hole_cuda_op(const at::Tensor& x, const at::Tensor& weight,
                               const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                               at::IntArrayRef pad, at::IntArrayRef hole, int64_t group) {
  c10::cuda::CUDAGuard guard(x.device());
  return conv2d_hole_impl(x, weight, bias, stride, pad, hole, group, cuda_backend());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_hole_backward_cuda_op(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef pad, at::IntArrayRef hole, int64_t group,
    std::array<bool, 3> output_mask) {
  c10::cuda::CUDAGuard guard(x.device());
  return conv2d_hole_backward_impl(grad_out, x, weight, stride, pad, hole, group, output_mask,
                                   cuda_backend());
}

}  // namespace

TORCH_LIBRARY_IMPL(deeplab_caffe, CUDA, m) {
  m.impl("im2col_hole", &im2col_hole_cuda_op);
  m.impl("col2im_hole", &col2im_hole_cuda_op);
  m.impl("conv2d_hole", &conv2d_hole_cuda_op);
  m.impl("conv2d_hole_backward", &conv2d_hole_backward_cuda_op);
}

}  // namespace deeplab_caffe
