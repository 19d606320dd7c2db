// The geometry of a hole-augmented ("atrous") im2col, ATen-free so the CUDA kernels can take it
// by value.
//
// Geometry per axis: extent = hole * (kernel - 1) + 1,
//                    out    = (in + 2 * pad - extent) / stride + 1,
// and kernel tap (i, j) of output (oh, ow) reads input (oh*stride_h - pad_h + i*hole_h,
// ow*stride_w - pad_w + j*hole_w); reads outside the image are 0.
// Column layout (Caffe's): row = (c * kernel_h + i) * kernel_w + j, column = oh * out_w + ow.
#pragma once

#include <cstdint>

namespace deeplab_caffe {

// Every value is int64_t, as make_geom accepts it: a pad or stride past 2^31 must not wrap in any
// backend.
struct HoleGeom {
  int64_t channels, height, width;
  int64_t kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, hole_h, hole_w;
  int64_t out_h, out_w;

  int64_t col_rows() const { return channels * kernel_h * kernel_w; }
  int64_t col_cols() const { return out_h * out_w; }
};

}  // namespace deeplab_caffe
