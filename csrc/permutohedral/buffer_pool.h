// Large float buffers for the CPU CRF, kept between calls.  A fresh buffer of tens of MB comes
// from the kernel as untouched pages, and each first touch of a 4 KiB page faults: measured on
// the 2-core VM, a 500x375x21 mean field touched 16k fresh pages when glibc had just returned
// its heap to the system, at ~2 us each (224 ms against 190 ms with the heap still mapped).
// Whether glibc keeps the heap depends on what the process freed before, so without this pool
// the same call is fast or slow at random.  Buffers go back to the pool when their owner
// (a PooledFloats, or the storage of a tensor made by pooled_tensor) is destroyed, on any thread;
// at most kPoolKeepBytes stay cached.  Included by the CPU kernels only.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace deeplab_caffe {
namespace permutohedral {

constexpr size_t kPoolKeepBytes = size_t(1) << 30;

class BufferPool {
 public:
  static BufferPool& instance() {
    static BufferPool* pool = new BufferPool;  // never destroyed: tensors may outlive statics
    return *pool;
  }

  // A buffer of at least n bytes (64-byte aligned), uninitialised: the smallest cached one that
  // is not more than twice too large, or a new one.
  void* acquire(size_t n, size_t* capacity) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      size_t best = free_.size();
      for (size_t i = 0; i < free_.size(); ++i)
        if (free_[i].second >= n && free_[i].second <= 2 * n + 4096 &&
            (best == free_.size() || free_[i].second < free_[best].second))
          best = i;
      if (best < free_.size()) {
        void* p = free_[best].first;
        *capacity = free_[best].second;
        cached_bytes_ -= free_[best].second;
        free_.erase(free_.begin() + best);
        return p;
      }
    }
    *capacity = n;
    return ::operator new[](n, std::align_val_t(64));
  }

  // Takes a buffer back; the oldest cached ones are freed past kPoolKeepBytes.
  void release(void* p, size_t capacity) {
    std::vector<std::pair<void*, size_t>> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      free_.emplace_back(p, capacity);
      cached_bytes_ += capacity;
      while (cached_bytes_ > kPoolKeepBytes) {
        drop.push_back(free_.front());
        cached_bytes_ -= free_.front().second;
        free_.erase(free_.begin());
      }
    }
    for (auto& d : drop) ::operator delete[](d.first, std::align_val_t(64));
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<void*, size_t>> free_;  // (buffer, capacity in bytes), oldest first
  size_t cached_bytes_ = 0;
};

// An uninitialised array of n T's from the pool, returned to it when destroyed.  Its users write
// each element before they read it.
template <class T>
class PooledArray {
 public:
  PooledArray() = default;
  explicit PooledArray(size_t n) {
    p_ = static_cast<T*>(BufferPool::instance().acquire(n * sizeof(T), &cap_));
  }
  PooledArray(PooledArray&& o) noexcept : p_(std::exchange(o.p_, nullptr)), cap_(o.cap_) {}
  PooledArray& operator=(PooledArray&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(cap_, o.cap_);
    return *this;
  }
  PooledArray(const PooledArray&) = delete;
  PooledArray& operator=(const PooledArray&) = delete;
  ~PooledArray() {
    if (p_) BufferPool::instance().release(p_, cap_);
  }
  T* data() const { return p_; }
  T& operator[](size_t i) const { return p_[i]; }

 private:
  T* p_ = nullptr;
  size_t cap_ = 0;  // bytes
};
using PooledFloats = PooledArray<float>;

// An uninitialised CPU tensor whose storage comes from the pool and goes back to it when the
// last reference to the tensor is gone.
inline at::Tensor pooled_tensor(at::IntArrayRef sizes, at::ScalarType dtype) {
  size_t n = at::elementSize(dtype);
  for (int64_t s : sizes) n *= (size_t)s;
  size_t cap = 0;
  void* p = BufferPool::instance().acquire(n > 0 ? n : 1, &cap);
  return at::from_blob(
      p, sizes, [cap](void* q) { BufferPool::instance().release(q, cap); },
      at::TensorOptions().dtype(dtype).device(at::kCPU));
}

}  // namespace permutohedral
}  // namespace deeplab_caffe
