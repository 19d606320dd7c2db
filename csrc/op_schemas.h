// Every op schema of deeplab_caffe, declared once for both libraries that use them:
// torch.ops.deeplab_caffe (ops.cpp: the CPU kernels and, in a CUDA build, the CUDA kernels) and
// torch.ops.deeplab_caffe_emu (emu/module.cpp: the CUDA kernels run on the CPU by the emulated
// build), so the emulated ops can never drift from the real ones.
#pragma once

#include <torch/library.h>

namespace deeplab_caffe {

inline void define_ops(torch::Library& m) {
  // ---- hole (atrous) im2col / col2im and the Caffe convolution built on them ----------------
  // x: (N, C, H, W) -> (N, C*kh*kw, out_h*out_w), rows in Caffe's order (c, i, j).
  m.def("im2col_hole(Tensor x, int[2] kernel, int[2] pad, int[2] stride, int[2] hole) -> Tensor");
  // cols: (N, C*kh*kw, out_h*out_w) -> (N, C, H, W); the adjoint of im2col_hole.
  m.def("col2im_hole(Tensor cols, int[2] size, int[2] kernel, int[2] pad, int[2] stride, "
        "int[2] hole) -> Tensor");
  // Caffe ConvolutionLayer forward: weight (O, C/group, kh, kw), bias (O) or None.
  m.def("conv2d_hole(Tensor x, Tensor weight, Tensor? bias, int[2] stride, int[2] pad, "
        "int[2] hole, int group) -> Tensor");
  // Gradients w.r.t. (x, weight, bias); output_mask says which ones are wanted.
  m.def("conv2d_hole_backward(Tensor grad_out, Tensor x, Tensor weight, int[2] stride, "
        "int[2] pad, int[2] hole, int group, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");

  // ---- permutohedral lattice / dense CRF (csrc/permutohedral) --------------------------------
  // features (P, d) float32, d <= 16, already divided by their stds; image_ids (P,) keeps the
  // points of different images on disjoint lattices.  Returns the lattice as tensors:
  // (offsets (P, d+1) int32, weights (P, d+1) float32, blur_neighbors (d+1, M, 2) int32 with -1 =
  //  absent, splat_ptr (M+1,) int32, splat_src (P*(d+1),) int32); see permutohedral/lattice.h.
  m.def("permutohedral_build(Tensor features, Tensor? image_ids) -> "
        "(Tensor, Tensor, Tensor, Tensor, Tensor)");
  // values (P, C) float32 -> (P, C): splat, [1 2 1]/2 blur along axes 0..d (d..0 if reverse),
  // slice times 1/(1+2^-d), exactly densecrf's Permutohedral::compute.
  m.def("permutohedral_filter(Tensor values, Tensor offsets, Tensor weights, "
        "Tensor blur_neighbors, Tensor splat_ptr, Tensor splat_src, bool reverse) -> Tensor");
  // The same filter in float64 (values (P, C) float64, same lattice): a reference path for
  // double-precision gradient checks (permutohedral/filter_f64.h).
  m.def("permutohedral_filter_f64(Tensor values, Tensor offsets, Tensor weights, "
        "Tensor blur_neighbors, Tensor splat_ptr, Tensor splat_src, bool reverse) -> Tensor");
  // Mean-field: unary (P, L) float32 energies; per kernel k a lattice, norm_before[k] /
  // norm_after[k] (P,) per-point scales (empty = none) and compat[k] (L,) diagonal or (L, L);
  // Q <- softmax(-unary - sum_k compat_k . (norm_after_k * K_k(norm_before_k * Q))), max_iter
  // times, from q_init or softmax(-unary).  Returns Q (P, L).
  m.def("dense_crf_meanfield(Tensor unary, Tensor? q_init, Tensor[] offsets, Tensor[] weights, "
        "Tensor[] blur_neighbors, Tensor[] splat_ptr, Tensor[] splat_src, Tensor[] norm_before, "
        "Tensor[] norm_after, Tensor[] compat, int max_iter) -> Tensor");
  // The mean field's backward (permutohedral/meanfield_backward.h): grad_logits = dL/d(the last
  // iteration's logits a), q_history = the T >= 1 (P, L) Q each iteration started from (Q_0..),
  // the kernels as dense_crf_meanfield takes them.  Returns (dL/dQ_0, dL/dunary through the
  // iterations' -unary terms, dL/dcompat[k] each shaped like compat[k]).
  m.def("dense_crf_meanfield_backward(Tensor grad_logits, Tensor[] q_history, Tensor[] offsets, "
        "Tensor[] weights, Tensor[] blur_neighbors, Tensor[] splat_ptr, Tensor[] splat_src, "
        "Tensor[] norm_before, Tensor[] norm_after, Tensor[] compat) -> (Tensor, Tensor, Tensor[])");
}

}  // namespace deeplab_caffe
