// The mean field's backward (crf/trainable.py's MeanFieldFunction), shared declarations.
//
// Forward, per iteration t: a_t = -U - sum_k C_k . m_k with m_k = na_k * F_k(nb_k * Q_t) and
// Q_{t+1} = softmax(a_t).  Given g = dL/da_t, the filter's adjoint F^T (the filter with the blur
// order reversed) gives every gradient of the iteration from one filtering per kernel,
// r_k = F_k^T(na_k * g):
//   dL/dC_k  -= r_k^T (nb_k * Q_t)     (diagonal C_k: the per-label sums of r_k * nb_k * Q_t)
//   dL/dQ_t   = -sum_k nb_k * (r_k C_k)
//   dL/dU    -= g
// then g <- Q_t * (dL/dQ_t - <dL/dQ_t, Q_t>) for the iteration before (the softmax's backward).
// No message of the forward is needed: only Q_t, so the forward keeps one (P, L) tensor per
// iteration, and the backward's work per iteration is the forward's (one splat and blur per
// kernel, one fused pass over the points).
#pragma once

#include <cstdint>

namespace deeplab_caffe {
namespace permutohedral {

// Points per block of the compatibility gradient's partial sums: the blocks' sums are added in
// block order, so the result does not depend on the thread count.
constexpr int64_t kGradCompatBlock = 512;

}  // namespace permutohedral
}  // namespace deeplab_caffe
