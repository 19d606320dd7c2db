// CUDA kernels of the permutohedral lattice (build, splat, blur, slice), free of ATen: the real
// build compiles them with nvcc, the emulated build as C++ on the CPU.  Launched by
// lattice_cuda.cu.  The per-point maths is lattice.h's, shared with the CPU twin.
//
// Vertices are numbered by the first (point, corner) entry that reaches them, as the CPU's serial
// insert numbers them.  The splat gathers each vertex's entries in entry order, summing the
// points of splat_half's two halves separately and then adding, as the CPU splats them: the
// same terms in the same order, so the same bits at every size.
#pragma once

#include "permutohedral/lattice.h"

#include <cstdint>

namespace deeplab_caffe {
namespace permutohedral {

struct Scale {
  float s[kMaxDim];
};

// The insert's table: a power of two at least twice the entries (probes stay short).  Its slots
// and the entry ids they hold are int32, so it may not pass 2^31 slots.
constexpr int64_t kMaxHashSlots = (int64_t)1 << 31;
inline int64_t hash_capacity(int64_t entries) {
  int64_t cap = 1024;
  while (cap < 2 * entries) cap <<= 1;
  return cap;
}

__global__ void embed_kernel(const float* __restrict__ f, const int32_t* __restrict__ ids,
                             int64_t P, int d, Scale scale, float* __restrict__ weights,
                             int32_t* __restrict__ keys, int* __restrict__ bad) {
  DC_KERNEL_LOOP(p, P) {
    int rem0[kMaxDim + 1], rank[kMaxDim + 1];
    const int dp1 = d + 1;
    if (!embed_point(f + p * d, d, scale.s, rem0, rank, weights + p * dp1)) {
      atomicMax(bad, 1);
      for (int r = 0; r <= d; ++r)
        for (int i = 0; i <= d; ++i) keys[(p * dp1 + r) * dp1 + i] = 0;
      continue;
    }
    for (int r = 0; r <= d; ++r)
      corner_key(rem0, rank, d, r, ids ? ids[p] : 0, keys + (p * dp1 + r) * dp1);
  }
}

// Inserts each entry's key; table slots hold the entry id that claimed them (-1 = empty).
__global__ void insert_kernel(const int32_t* __restrict__ keys, int64_t E, int key_len,
                              int32_t* table, uint64_t mask, int32_t* __restrict__ slot_of) {
  DC_KERNEL_LOOP(e, E) {
    const int32_t* key = keys + e * key_len;
    uint64_t h = hash_key(key, key_len) & mask;
    while (true) {
      int32_t cur = table[h];
      if (cur < 0) {
        cur = atomicCAS(&table[h], -1, (int32_t)e);
        if (cur < 0) break;  // claimed
      }
      if (keys_equal(keys + (int64_t)cur * key_len, key, key_len)) break;
      h = (h + 1) & mask;
    }
    slot_of[e] = (int32_t)h;
  }
}

__global__ void first_entry_kernel(const int32_t* __restrict__ slot_of, int64_t E,
                                   int32_t* first) {
  DC_KERNEL_LOOP(e, E) { atomicMin(&first[slot_of[e]], (int32_t)e); }
}

__device__ __forceinline__ int32_t lookup(const int32_t* __restrict__ keys, int key_len,
                                          const int32_t* __restrict__ table, uint64_t mask,
                                          const int32_t* key) {
  uint64_t h = hash_key(key, key_len) & mask;
  while (true) {
    const int32_t cur = table[h];
    if (cur < 0) return -1;
    if (keys_equal(keys + (int64_t)cur * key_len, key, key_len)) return (int32_t)h;
    h = (h + 1) & mask;
  }
}

__global__ void neighbor_kernel(const int32_t* __restrict__ keys, int d,
                                const int32_t* __restrict__ table, uint64_t mask,
                                const int32_t* __restrict__ first,
                                const int32_t* __restrict__ vertex_of_entry,
                                const int32_t* __restrict__ rep_entry, int64_t M,
                                int32_t* __restrict__ nb) {
  const int key_len = d + 1;
  DC_KERNEL_LOOP(i, M * (d + 1)) {
    const int64_t v = i % M;
    const int j = (int)(i / M);
    int32_t n1[kMaxDim + 1], n2[kMaxDim + 1];
    neighbor_keys(keys + (int64_t)rep_entry[v] * key_len, d, j, n1, n2);
    const int32_t h1 = lookup(keys, key_len, table, mask, n1);
    const int32_t h2 = lookup(keys, key_len, table, mask, n2);
    nb[i * 2 + 0] = h1 < 0 ? -1 : vertex_of_entry[first[h1]];
    nb[i * 2 + 1] = h2 < 0 ? -1 : vertex_of_entry[first[h2]];
  }
}

// Entry s's term of the splat into channel c: w * x, x pre-scaled first when pre is given.
__device__ __forceinline__ float splat_term(const LatticeView& L, const float* __restrict__ in,
                                            int64_t C, const float* __restrict__ pre, int64_t c,
                                            int32_t s) {
  const int64_t p = s / (L.d + 1);
  const float x = pre ? mul_rn(in[p * C + c], pre[p]) : in[p * C + c];
  return mul_rn(L.weights[s], x);
}

// One (vertex, channel) per thread: the vertex's entries (ascending, so the first half's come
// first) summed per half, then the halves added (see the top of this file).
__global__ void splat_kernel(LatticeView L, const float* __restrict__ in, int64_t C,
                             const float* __restrict__ pre, float* __restrict__ out) {
  const int64_t half_end = splat_half(L.P) * (L.d + 1);
  DC_KERNEL_LOOP(i, L.M * C) {
    const int64_t v = i / C, c = i % C;
    const int32_t end = L.splat_ptr[v + 1];
    int32_t k = L.splat_ptr[v];
    float first = 0.0f, second = 0.0f;
    for (; k < end && L.splat_src[k] < half_end; ++k)
      first = add_rn(first, splat_term(L, in, C, pre, c, L.splat_src[k]));
    for (; k < end; ++k) second = add_rn(second, splat_term(L, in, C, pre, c, L.splat_src[k]));
    out[i] = add_rn(first, second);
  }
}

__global__ void blur_kernel(const int32_t* __restrict__ nb, int64_t M, int64_t C,
                            const float* __restrict__ cur, float* __restrict__ nxt) {
  DC_KERNEL_LOOP(i, M * C) {
    const int64_t v = i / C, c = i % C;
    const int32_t n1 = nb[2 * v], n2 = nb[2 * v + 1];
    const float a = n1 >= 0 ? cur[n1 * C + c] : 0.0f;
    const float z = n2 >= 0 ? cur[n2 * C + c] : 0.0f;
    nxt[i] = add_rn(cur[i], mul_rn(0.5f, add_rn(a, z)));
  }
}

__global__ void slice_kernel(LatticeView L, const float* __restrict__ vals, int64_t C, float alpha,
                             const float* __restrict__ post, float* __restrict__ out) {
  const int dp1 = L.d + 1;
  DC_KERNEL_LOOP(i, L.P * C) {
    const int64_t p = i / C, c = i % C;
    float y = 0.0f;
    for (int j = 0; j < dp1; ++j) {
      const float val = vals[(int64_t)L.offsets[p * dp1 + j] * C + c];
      slice_accumulate(y, L.weights[p * dp1 + j], val, alpha, C <= 2);
    }
    out[i] = post ? mul_rn(y, post[p]) : y;
  }
}

}  // namespace permutohedral
}  // namespace deeplab_caffe
