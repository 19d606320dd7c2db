// CPU twin of the hole im2col / col2im kernels (the reference the CUDA kernels are tested
// against), and the CPU registrations of the im2col-based ops.
#include "im2col/im2col.h"

#include <ATen/Parallel.h>

#include <cstring>
#include <vector>

namespace deeplab_caffe {

namespace {

template <typename T>
void im2col_kernel(const T* x, T* cols, const HoleGeom& g, int64_t nb, int64_t row0,
                   int64_t rows) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  const int64_t lc = rows * g.out_w;
  const int64_t plane = g.height * g.width;
  // One work item per column-buffer row (image, channel, tap).
  at::parallel_for(0, nb * g.channels * taps, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t tap = r % taps;
      const int64_t nc = r / taps;  // n * channels + c
      const int64_t i = tap / g.kernel_w, j = tap % g.kernel_w;
      const T* src = x + nc * plane;
      T* dst = cols + r * lc;
      const int64_t w_off = j * g.hole_w - g.pad_w;
      // Output columns whose input column is inside the image: ow*stride + w_off in [0, W).
      int64_t ow_lo = 0;
      if (w_off < 0) ow_lo = (-w_off + g.stride_w - 1) / g.stride_w;
      int64_t ow_hi = g.width - w_off <= 0 ? 0 : (g.width - w_off - 1) / g.stride_w + 1;
      ow_lo = std::min(ow_lo, g.out_w);
      ow_hi = std::max(ow_lo, std::min(ow_hi, g.out_w));
      for (int64_t oh = row0; oh < row0 + rows; ++oh, dst += g.out_w) {
        const int64_t ih = oh * g.stride_h - g.pad_h + i * g.hole_h;
        if (ih < 0 || ih >= g.height) {
          std::fill(dst, dst + g.out_w, T(0));
          continue;
        }
        const T* line = src + ih * g.width;
        std::fill(dst, dst + ow_lo, T(0));
        if (g.stride_w == 1) {
          if (ow_hi > ow_lo) std::memcpy(dst + ow_lo, line + ow_lo + w_off, (ow_hi - ow_lo) * sizeof(T));
        } else {
          for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] = line[ow * g.stride_w + w_off];
        }
        std::fill(dst + ow_hi, dst + g.out_w, T(0));
      }
    }
  });
}

// Gather form: each (image, channel, input row) is owned by one iteration, which sums the
// contributions of every tap that reads it from output rows [row0, row0 + rows).  Each pixel's
// taps are summed in (i, j) order into a zeroed row and the sum is then added to x, exactly as
// the CUDA kernel does (col2im_hole_kernel), so the twins give the same bits when x already holds
// an earlier row block's sums (the convolution backward).
template <typename T>
void col2im_kernel(const T* cols, T* x, const HoleGeom& g, int64_t nb, int64_t row0,
                   int64_t rows) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  const int64_t lc = rows * g.out_w;
  const int64_t plane = g.height * g.width;
  const int64_t ext_h = g.hole_h * (g.kernel_h - 1) + 1;
  // Input rows that the block of output rows can touch.
  const int64_t h_lo = std::max<int64_t>(0, row0 * g.stride_h - g.pad_h);
  const int64_t h_hi = std::min<int64_t>(g.height, (row0 + rows - 1) * g.stride_h - g.pad_h + ext_h);
  if (h_hi <= h_lo) return;
  const int64_t nh = h_hi - h_lo;
  at::parallel_for(0, nb * g.channels * nh, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> acc(g.width);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t h = h_lo + r % nh;
      const int64_t nc = r / nh;
      std::fill(acc.begin(), acc.end(), T(0));
      const T* cbase = cols + nc * taps * lc;
      for (int64_t i = 0; i < g.kernel_h; ++i) {
        const int64_t hp = h + g.pad_h - i * g.hole_h;
        if (hp < 0 || hp % g.stride_h != 0) continue;
        const int64_t oh = hp / g.stride_h;
        if (oh < row0 || oh >= row0 + rows) continue;
        for (int64_t j = 0; j < g.kernel_w; ++j) {
          const T* src = cbase + (i * g.kernel_w + j) * lc + (oh - row0) * g.out_w;
          // Tap j of output column ow reads input column ow * stride_w + b.  Within one input
          // row each output column maps to a distinct input column, so this loop still owns
          // everything it writes.
          const int64_t b = j * g.hole_w - g.pad_w;
          const int64_t ow_lo = b < 0 ? (-b + g.stride_w - 1) / g.stride_w : 0;
          const int64_t ow_hi =
              g.width - b <= 0 ? 0 : std::min(g.out_w, (g.width - b - 1) / g.stride_w + 1);
          T* a = acc.data();
          if (g.stride_w == 1) {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) a[ow + b] += src[ow];
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) a[ow * g.stride_w + b] += src[ow];
          }
        }
      }
      T* dst = x + nc * plane + h * g.width;
      for (int64_t w = 0; w < g.width; ++w) dst[w] += acc[w];
    }
  });
}

}  // namespace

void im2col_cpu(const at::Tensor& x, at::Tensor& cols, const HoleGeom& g, int64_t row0,
                int64_t rows) {
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "im2col_hole_cpu", [&] {
    im2col_kernel<scalar_t>(x.data_ptr<scalar_t>(), cols.data_ptr<scalar_t>(), g, x.size(0),
                            row0, rows);
  });
}

void col2im_cpu(const at::Tensor& cols, at::Tensor& x, const HoleGeom& g, int64_t row0,
                int64_t rows) {
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "col2im_hole_cpu", [&] {
    col2im_kernel<scalar_t>(cols.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), g, x.size(0),
                            row0, rows);
  });
}

namespace {

const ColBackend& cpu_backend() {
  static const ColBackend be{im2col_cpu, col2im_cpu, col_budget_bytes(16)};
  return be;
}

at::Tensor im2col_hole_cpu_op(const at::Tensor& x, at::IntArrayRef kernel, at::IntArrayRef pad,
                              at::IntArrayRef stride, at::IntArrayRef hole) {
  return im2col_hole_impl(x, kernel, pad, stride, hole, cpu_backend());
}

at::Tensor col2im_hole_cpu_op(const at::Tensor& cols, at::IntArrayRef size,
                              at::IntArrayRef kernel, at::IntArrayRef pad,
                              at::IntArrayRef stride, at::IntArrayRef hole) {
  return col2im_hole_impl(cols, size, kernel, pad, stride, hole, cpu_backend());
}

at::Tensor conv2d_hole_cpu_op(const at::Tensor& x, const at::Tensor& weight,
                              const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                              at::IntArrayRef pad, at::IntArrayRef hole, int64_t group) {
  return conv2d_hole_impl(x, weight, bias, stride, pad, hole, group, cpu_backend());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_hole_backward_cpu_op(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef pad, at::IntArrayRef hole, int64_t group,
    std::array<bool, 3> output_mask) {
  return conv2d_hole_backward_impl(grad_out, x, weight, stride, pad, hole, group, output_mask,
                                   cpu_backend());
}

}  // namespace

TORCH_LIBRARY_IMPL(deeplab_caffe, CPU, m) {
  m.impl("im2col_hole", &im2col_hole_cpu_op);
  m.impl("col2im_hole", &col2im_hole_cpu_op);
  m.impl("conv2d_hole", &conv2d_hole_cpu_op);
  m.impl("conv2d_hole_backward", &conv2d_hole_backward_cpu_op);
}

}  // namespace deeplab_caffe
