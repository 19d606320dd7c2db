// CPU permutohedral lattice build: the embedding (8 points at a time for d = 2 and 5), the hash
// insert of two fixed halves of the points at once with vertex numbers by first occurrence in
// pixel order, the blur neighbours (one lookup per pair) and the CSR splat lists the CUDA twin's
// gather-splat reads, each parallel where it can be.  The filter is in lattice_cpu.cpp.
// embed_lanes' v8f helpers are always inlined: no vector crosses a call, so GCC's note that
// passing one differs between the SIMD clones' ABIs does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "common.h"
#include "permutohedral/lattice.h"
#include "permutohedral/buffer_pool.h"
#include "permutohedral/crf_threads.h"
#include "permutohedral/embed_lanes.h"
#include "permutohedral/lattice_host.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <vector>

namespace deeplab_caffe {
namespace permutohedral {

namespace {

// Open addressing with linear probing over a power-of-two table of vertex ids kept at most half
// full, with the full keys stored once per vertex: hash collisions never merge vertices, and a
// probe that ends on an empty slot (most neighbour searches in a sparse lattice) touches only the
// small id table.
class HashTable {
 public:
  HashTable(int key_len, int64_t expected) : key_len_(key_len) {
    int64_t cap = 1024;
    while (cap < expected) cap <<= 1;
    table_.assign(cap, -1);
    keys_.reserve((size_t)expected / 2 * key_len);
  }
  int64_t size() const { return size_; }
  const int32_t* key(int64_t v) const { return keys_.data() + v * key_len_; }

  // hash: hash_key(key, key_len).
  int32_t find_or_insert(const int32_t* key, uint64_t hash) {
    if (2 * (size_ + 1) > (int64_t)table_.size()) grow();
    const uint64_t mask = table_.size() - 1;
    for (uint64_t h = hash & mask;; h = (h + 1) & mask) {
      const int32_t v = table_[h];
      if (v < 0) {
        table_[h] = (int32_t)size_;
        keys_.insert(keys_.end(), key, key + key_len_);
        return (int32_t)size_++;
      }
      if (keys_equal(this->key(v), key, key_len_)) return v;
    }
  }

  // Starts loading the slot a key hashes to, so several probes' cache misses overlap.
  void prefetch(const int32_t* key) const { prefetch_hash(hash_key(key, key_len_)); }
  void prefetch_hash(uint64_t hash) const {
    __builtin_prefetch(&table_[hash & (table_.size() - 1)]);
  }

  int32_t find(const int32_t* key) const {
    const uint64_t mask = table_.size() - 1;
    for (uint64_t h = hash_key(key, key_len_) & mask;; h = (h + 1) & mask) {
      const int32_t v = table_[h];
      if (v < 0) return -1;
      if (keys_equal(this->key(v), key, key_len_)) return v;
    }
  }

 private:
  void grow() {
    std::vector<int32_t> bigger(table_.size() * 2, -1);
    const uint64_t mask = bigger.size() - 1;
    for (int64_t v = 0; v < size_; ++v) {
      uint64_t h = hash_key(key(v), key_len_) & mask;
      while (bigger[h] >= 0) h = (h + 1) & mask;
      bigger[h] = (int32_t)v;
    }
    table_.swap(bigger);
  }

  int key_len_;
  int64_t size_ = 0;
  std::vector<int32_t> table_;
  std::vector<int32_t> keys_;
};

// Points from this many on are inserted as two halves at once (see embed_and_insert).
constexpr int64_t kParallelInsertMin = 16384;

// Inserts the d+1 simplex corners of the points [pb, pe) in point order into `table`, writing
// their vertex numbers (the table's) to off.  Neighbouring pixels share most corners, and a
// shared corner has the same remainder in both, so a corner equal to the previous pixel's of
// the same remainder takes its vertex without a probe.  Points are looked at kAhead ahead: keys
// built, compared, hashed and their slots prefetched (every key: a branch on the comparison there
// costs more than the hashes it saves, as ~85% of a photo's corners differ from the previous
// pixel's), kept in a ring of kRing points until inserted.
template <int D>
void insert_points(const int32_t* rem0, const int32_t* rank, const int32_t* ids, int64_t pb,
                   int64_t pe, int d_in, int32_t* off, HashTable& table) {
  const int d = D > 0 ? D : d_in, dp1 = d + 1, key_len = d + 1;
  constexpr int64_t kAhead = 4, kRing = 8;
  int32_t keys[kRing][kMaxDim + 1][kMaxDim + 1];
  uint64_t hashes[kRing][kMaxDim + 1];
  bool same[kRing][kMaxDim + 1];
  auto look = [&](int64_t q) {
    const int64_t slot = q & (kRing - 1), prev = (q - 1) & (kRing - 1);
    for (int r = 0; r <= d; ++r) {
      corner_key<D>(&rem0[q * dp1], &rank[q * dp1], d, r, ids ? ids[q] : 0, keys[slot][r]);
      same[slot][r] = q > pb && keys_equal(keys[prev][r], keys[slot][r], key_len);
      hashes[slot][r] = hash_key(keys[slot][r], key_len);
      table.prefetch_hash(hashes[slot][r]);
    }
  };
  for (int64_t q = pb; q < std::min(pb + kAhead, pe); ++q) look(q);
  for (int64_t p = pb; p < pe; ++p) {
    if (p + kAhead < pe) look(p + kAhead);
    const int64_t slot = p & (kRing - 1);
    for (int r = 0; r <= d; ++r)
      off[p * dp1 + r] = same[slot][r] ? off[(p - 1) * dp1 + r]
                                       : table.find_or_insert(keys[slot][r], hashes[slot][r]);
  }
}


DC_SIMD_CLONES int embed_block_d2(const float* f, const float* scale, int32_t* rem0,
                                  int32_t* rank, float* bary) {
  return embed_lanes<2>(f, scale, rem0, rank, bary);
}
DC_SIMD_CLONES int embed_block_d5(const float* f, const float* scale, int32_t* rem0,
                                  int32_t* rank, float* bary) {
  return embed_lanes<5>(f, scale, rem0, rank, bary);
}
// embed_lanes for the common kernels' d (2: spatial, 5: bilateral).
int embed_block(int d, const float* f, const float* scale, int32_t* rem0, int32_t* rank,
                float* bary) {
  return d == 2 ? embed_block_d2(f, scale, rem0, rank, bary)
                : embed_block_d5(f, scale, rem0, rank, bary);
}

// Embeds every point (in parallel) and inserts its d+1 simplex corners in pixel order, so that
// vertex numbers follow first occurrence: deterministic, and the same numbering as the CUDA twin.
// D: d fixed at compile time, or 0.
template <int D>
void embed_and_insert(const float* f, const int32_t* ids, int64_t P, int d_in, const float* scale,
                      float* w, int32_t* off, HashTable& table) {
  const int d = D > 0 ? D : d_in, dp1 = d + 1, key_len = d + 1;
  const at::Tensor rem0_t = pooled_tensor({P, dp1}, at::kInt),
                   rank_t = pooled_tensor({P, dp1}, at::kInt);
  int32_t* const rem0 = rem0_t.data_ptr<int32_t>();
  int32_t* const rank = rank_t.data_ptr<int32_t>();
  std::atomic<int64_t> bad{-1};
  crf_parallel_big(0, P, 2048, [&](int64_t b, int64_t e) {
    int64_t p = b;
    if (D == 2 || D == 5)
      for (; p + kEmbedLanes <= e; p += kEmbedLanes)
        if (const int rejected = embed_block(D, f + p * d, scale, &rem0[p * dp1], &rank[p * dp1],
                                             w + p * dp1))
          bad.store(p + __builtin_ctz(rejected));
    for (; p < e; ++p)
      if (!embed_point<D>(f + p * d, d, scale, &rem0[p * dp1], &rank[p * dp1], w + p * dp1))
        bad.store(p);
  });
  const int64_t bad_p = bad.load();
  DC_CHECK_ARG(bad_p < 0, "features: point ", bad_p, " has a non-finite or too large coordinate ",
               "for the lattice (feature / std must stay below ", kMaxCoord / (d + 1), ")");

  // Two fixed halves of the points are inserted at once, each into its own table (numbering
  // its vertices by first occurrence within the half); the second half's vertices are then
  // looked up in the first's table.  Those it lacks get the next numbers in the second half's
  // own order -- which is their order of first occurrence over all points, so the numbering
  // is the serial insert's, whatever the thread count.
  const int64_t half = P >= kParallelInsertMin ? P / 2 : P;
  if (half == P) {
    insert_points<D>(rem0, rank, ids, 0, P, d, off, table);
    return;
  }
  HashTable second(key_len, (P - half) / 2);
  crf_parallel_big(0, 2, 1, [&](int64_t b, int64_t e) {
    for (int64_t h = b; h < e; ++h) {
      if (h == 0) insert_points<D>(rem0, rank, ids, 0, half, d, off, table);
      else insert_points<D>(rem0, rank, ids, half, P, d, off, second);
    }
  });
  const int64_t m2 = second.size();
  std::vector<int32_t> global((size_t)m2);
  crf_parallel_for(0, m2, 1024, [&](int64_t b, int64_t e) {
    for (int64_t v = b; v < e; ++v) {
      if (v + 4 < e) table.prefetch(second.key(v + 4));
      global[v] = table.find(second.key(v));
    }
  });
  for (int64_t v = 0; v < m2; ++v)  // serial, in the second half's order; mostly few
    if (global[v] < 0)
      global[v] = table.find_or_insert(second.key(v), hash_key(second.key(v), key_len));
  crf_parallel_for(half * dp1, P * dp1, 8192, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) off[i] = global[off[i]];
  });
}

// The CSR splat lists: a counting sort of the n (point, corner) entries by vertex, stable in
// entry order (ptr: M+1 zeros in).  In parallel over contiguous chunks of the entries, each
// chunk's entries of a vertex placed after the earlier chunks': the serial sort's result.
void sort_entries_by_vertex(const int32_t* off, int64_t n, int64_t M, int32_t* ptr,
                            int32_t* src) {
  const int64_t threads = t_crf_threads > 0 ? t_crf_threads : at::get_num_threads();
  const int64_t T = std::max<int64_t>(1, std::min<int64_t>(threads, n / 16384));
  std::vector<std::vector<int32_t>> next((size_t)T, std::vector<int32_t>((size_t)M, 0));
  auto chunk = [&](int64_t t) { return n * t / T; };
  crf_parallel_for(0, T, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t)
      for (int64_t i = chunk(t); i < chunk(t + 1); ++i) next[t][off[i]]++;
  });
  for (int64_t v = 0; v < M; ++v) {  // counts -> each chunk's first slot in the vertex's list
    int32_t at = ptr[v];
    for (int64_t t = 0; t < T; ++t) {
      const int32_t c = next[t][v];
      next[t][v] = at;
      at += c;
    }
    ptr[v + 1] = at;
  }
  crf_parallel_for(0, T, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t)
      for (int64_t i = chunk(t); i < chunk(t + 1); ++i) src[next[t][off[i]]++] = (int32_t)i;
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> build_cpu(
    const at::Tensor& features_in, const std::optional<at::Tensor>& image_ids_in) {
  check_build_args(features_in, image_ids_in);
  CrfThreadsScope threads;
  const at::Tensor features = features_in.contiguous();
  const int64_t P = features.size(0);
  const int d = (int)features.size(1), dp1 = d + 1, key_len = d + 1;
  at::Tensor image_ids;
  if (image_ids_in.has_value()) image_ids = image_ids_in->to(at::kInt).contiguous();

  at::Tensor offsets = pooled_tensor({P, dp1}, at::kInt);
  at::Tensor weights = pooled_tensor({P, dp1}, at::kFloat);
  float scale[kMaxDim];
  scale_factors(d, scale);

  const float* f = features.data_ptr<float>();
  float* w = weights.data_ptr<float>();
  int32_t* off = offsets.data_ptr<int32_t>();
  const int32_t* ids = image_ids.defined() ? image_ids.data_ptr<int32_t>() : nullptr;
  // Sized for the typical M ~ P/4 (densecrf measures 0.05-3.4 P); it doubles when half full.
  HashTable table(key_len, P / 2);
  switch (d) {  // the common kernels' d fixed at compile time; the same operations for any d
    case 2: embed_and_insert<2>(f, ids, P, d, scale, w, off, table); break;
    case 5: embed_and_insert<5>(f, ids, P, d, scale, w, off, table); break;
    default: embed_and_insert<0>(f, ids, P, d, scale, w, off, table);
  }
  const int64_t M = table.size();
  DC_CHECK_ARG(M < (int64_t)INT32_MAX / 2, "features: lattice too large (", M, " vertices)");

  // Neighbours are mutual: u is v's first neighbour along an axis exactly when v is u's second
  // (neighbor_keys' two keys mirror each other), so only the first is looked up and the second
  // written from it; each second slot has one writer, and the absent ones stay -1.
  at::Tensor neighbors = pooled_tensor({dp1, M, 2}, at::kInt);
  int32_t* nb = neighbors.data_ptr<int32_t>();
  std::fill(nb, nb + dp1 * M * 2, -1);
  crf_parallel_big(0, M, 1024, [&](int64_t b, int64_t e) {
    // All d+1 neighbour keys of a vertex first, their slots prefetched, then the probes.
    int32_t nk[kMaxDim + 1][kMaxDim + 1], mirror[kMaxDim + 1];
    for (int64_t v = b; v < e; ++v) {
      for (int j = 0; j <= d; ++j) {
        neighbor_keys(table.key(v), d, j, nk[j], mirror);
        table.prefetch(nk[j]);
      }
      for (int j = 0; j <= d; ++j) {
        const int32_t u = table.find(nk[j]);
        nb[(j * M + v) * 2 + 0] = u;
        if (u >= 0) nb[(j * M + u) * 2 + 1] = (int32_t)v;
      }
    }
  });

  at::Tensor splat_ptr = pooled_tensor({M + 1}, at::kInt).zero_();
  at::Tensor splat_src = pooled_tensor({P * dp1}, at::kInt);
  sort_entries_by_vertex(off, P * dp1, M, splat_ptr.data_ptr<int32_t>(),
                         splat_src.data_ptr<int32_t>());
  return {offsets, weights, neighbors, splat_ptr, splat_src};
}

}  // namespace permutohedral
}  // namespace deeplab_caffe

TORCH_LIBRARY_IMPL(deeplab_caffe, CPU, m) {
  m.impl("permutohedral_build", &deeplab_caffe::permutohedral::build_cpu);
}
