// The CPU mean field's per-point kernels: the softmax of -unary, and the end of an iteration
// fused per point (each kernel's slice, the compatibility update and the softmax, and on <= 2
// threads the next iteration's splat of the new row).  Used by meanfield_cpu.cpp's loops.
#pragma once

#include "permutohedral/lattice.h"

#include <cstdint>

namespace deeplab_caffe {
namespace permutohedral {

// One kernel's blurred lattice values and what turns them into a message for the update.
struct SliceSource {
  LatticeView L;
  const float* vals;   // (M, S) blurred values
  const float* post;   // (P,) or null
  const float* c;      // (L,) diagonal or (L, L)
  const float* c_pad = nullptr;  // the diagonal padded with zeros to S, or null for a matrix
  bool full;
  float alpha;
};

// Where the fused update splats its new Q rows for the next iteration: one kernel's buffers for
// one half of the points, as splat_points takes them (lattice_cpu.cpp).
struct SplatTarget {
  const float* pre = nullptr;  // norm_before, or null
  float* out_new = nullptr;
  float* out_old = nullptr;
  int64_t new_base = 0;
  int64_t next = 0;
};

// Points per block of the update: their softmaxes interleave.
constexpr int kBlock = 8;

// Q rows [pb, pe) (stride S) = softmax(-U rows (stride L)).
void softmax_neg_rows(const float* U, int64_t L, float* q, int64_t S, int64_t pb, int64_t pe);

// The same from rows already negated and padded (stride S).
void softmax_rows(const float* NU, int64_t L, float* q, int64_t S, int64_t pb, int64_t pe);

// pydensecrf's (L, P) layout and our padded rows: nu rows [pb, pe) (stride S, zeros after the
// L labels) = -Ut's columns, and Qt's columns [pb, pe) = q rows' first L values.
void neg_rows_from_labels_first(const float* Ut, int64_t P, int64_t L, float* nu, int64_t S,
                                int64_t pb, int64_t pe);
void rows_to_labels_first(const float* q, int64_t S, int64_t L, float* Qt, int64_t P, int64_t pb,
                          int64_t pe);

// Q rows [pb, pe) = softmax(-U - sum_k compat_k . slice_k): any compatibility, through memory;
// y: S floats of scratch.
void update_rows(const SliceSource* ks, int64_t K, const float* U, int64_t L, int64_t S,
                 float* q, float* y, int64_t pb, int64_t pe);

// The same for diagonal compatibilities and rows of `blocks` SIMD blocks (1..4), in registers;
// NU: -unary padded to the stride.  tg (K targets, or null) splats the new rows for the next
// iteration from `scratch` (kBlock rows) instead of writing them to q.
void update_rows_blocks(int blocks, const SliceSource* ks, int64_t K, const float* NU, int64_t L,
                        float* q, int64_t pb, int64_t pe, SplatTarget* tg, float* scratch);

}  // namespace permutohedral
}  // namespace deeplab_caffe
