// Hole-augmented ("atrous") im2col / col2im with DeepLab v1 / Caffe semantics, and the Caffe
// ConvolutionLayer (im2col + GEMM forward, GEMM + col2im backward) built on them.  The geometry
// is in hole_geom.h.
#pragma once

#include "common.h"
#include "im2col/hole_geom.h"

#include <array>
#include <cstdint>

namespace deeplab_caffe {

// Validates the geometry (ValueError naming the argument) and computes the output size.
HoleGeom make_geom(int64_t channels, int64_t height, int64_t width, at::IntArrayRef kernel,
                   at::IntArrayRef pad, at::IntArrayRef stride, at::IntArrayRef hole);

// The kernels work on a block of output rows [row0, row0 + rows) of every image of a batch so
// the convolution can bound its column buffer (see conv_hole.cpp).
//   x    : (nb, C, H, W) contiguous
//   cols : (nb, C*kh*kw, rows*out_w) contiguous
// im2col fills cols; col2im ADDS the columns' contributions into x (gather form: each thread or
// loop iteration owns one input pixel, so the result is deterministic and needs no atomics).
using Im2colFn = void (*)(const at::Tensor& x, at::Tensor& cols, const HoleGeom& g,
                          int64_t row0, int64_t rows);
using Col2imFn = void (*)(const at::Tensor& cols, at::Tensor& x, const HoleGeom& g,
                          int64_t row0, int64_t rows);

void im2col_cpu(const at::Tensor& x, at::Tensor& cols, const HoleGeom& g, int64_t row0,
                int64_t rows);
void col2im_cpu(const at::Tensor& cols, at::Tensor& x, const HoleGeom& g, int64_t row0,
                int64_t rows);

struct ColBackend {
  Im2colFn im2col;
  Col2imFn col2im;
  int64_t budget_bytes;  // upper bound on one column buffer
};

// Device-generic pieces (conv_hole.cpp); each backend passes its kernels.
at::Tensor im2col_hole_impl(const at::Tensor& x, at::IntArrayRef kernel, at::IntArrayRef pad,
                            at::IntArrayRef stride, at::IntArrayRef hole, const ColBackend& be);
at::Tensor col2im_hole_impl(const at::Tensor& cols, at::IntArrayRef size, at::IntArrayRef kernel,
                            at::IntArrayRef pad, at::IntArrayRef stride, at::IntArrayRef hole,
                            const ColBackend& be);
at::Tensor conv2d_hole_impl(const at::Tensor& x, const at::Tensor& weight,
                            const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                            at::IntArrayRef pad, at::IntArrayRef hole, int64_t group,
                            const ColBackend& be);
std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_hole_backward_impl(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef pad, at::IntArrayRef hole, int64_t group,
    std::array<bool, 3> output_mask, const ColBackend& be);

// Column-buffer budget: DEEPLAB_CAFFE_COL_BUDGET_MB overrides the backend's default.
int64_t col_budget_bytes(int64_t default_mb);

}  // namespace deeplab_caffe
