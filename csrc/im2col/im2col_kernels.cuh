// The CUDA hole im2col / col2im kernels (semantics in im2col.h; the CPU twin is im2col_cpu.cpp).
// ATen-free, so the emulated build runs exactly these bodies; launched from im2col_cuda.cu.
#pragma once

#include "im2col/hole_geom.h"

#include <cstdint>

namespace deeplab_caffe {

// One thread per (image, channel, output row of the block, output column) writes that output
// position's kernel_h * kernel_w taps; consecutive threads write consecutive columns, so the
// stores coalesce.
template <typename T>
__global__ void im2col_hole_kernel(const T* __restrict__ x, T* __restrict__ cols, int64_t total,
                                   HoleGeom g, int64_t row0, int64_t rows) {
  const int64_t lc = rows * g.out_w;
  const int64_t taps = g.kernel_h * g.kernel_w;
  DC_KERNEL_LOOP(idx, total) {
    const int64_t ow = idx % g.out_w;
    const int64_t ohl = (idx / g.out_w) % rows;
    const int64_t nc = idx / lc;  // n * channels + c
    const int64_t ih0 = (ohl + row0) * g.stride_h - g.pad_h;
    const int64_t iw0 = ow * g.stride_w - g.pad_w;
    const T* src = x + nc * g.height * g.width;
    T* dst = cols + nc * taps * lc + ohl * g.out_w + ow;
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      const int64_t ih = ih0 + i * g.hole_h;
      const bool row_in = ih >= 0 && ih < g.height;
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t iw = iw0 + j * g.hole_w;
        *dst = (row_in && iw >= 0 && iw < g.width) ? src[ih * g.width + iw] : T(0);
        dst += lc;
      }
    }
  }
}

// Deterministic col2im: gather form, one thread per input pixel of the rows [h_lo, h_lo + nh)
// that the block touches; each thread sums the taps that read its pixel in (i, j) order, then
// adds the sum to x (the convolution backward accumulates blocks).  No atomics, a fixed order,
// and the CPU twin sums in the same order, so both give the same bits.
template <typename T>
__global__ void col2im_hole_kernel(const T* __restrict__ cols, T* __restrict__ x, int64_t total,
                                   HoleGeom g, int64_t h_lo, int64_t nh, int64_t row0,
                                   int64_t rows) {
  const int64_t lc = rows * g.out_w;
  const int64_t taps = g.kernel_h * g.kernel_w;
  DC_KERNEL_LOOP(idx, total) {
    const int64_t w = idx % g.width;
    const int64_t h = h_lo + (idx / g.width) % nh;
    const int64_t nc = idx / (g.width * nh);
    const T* cbase = cols + nc * taps * lc;
    T acc = T(0);
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      const int64_t hp = h + g.pad_h - i * g.hole_h;
      if (hp < 0 || hp % g.stride_h != 0) continue;
      const int64_t oh = hp / g.stride_h - row0;
      if (oh < 0 || oh >= rows) continue;
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t wp = w + g.pad_w - j * g.hole_w;
        if (wp < 0 || wp % g.stride_w != 0) continue;
        const int64_t ow = wp / g.stride_w;
        if (ow >= g.out_w) continue;
        acc += cbase[(i * g.kernel_w + j) * lc + oh * g.out_w + ow];
      }
    }
    x[nc * g.height * g.width + h * g.width + w] += acc;
  }
}

}  // namespace deeplab_caffe
