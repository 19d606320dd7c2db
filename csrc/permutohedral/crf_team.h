// The parts of the CPU CRF's threading that need neither ATen nor OpenMP, so that a plain C++
// test can drive them (tests/test_crf_team.py): the rule for how many threads the small and the
// big steps use under a given load, and the barrier at which a team of threads meets
// (crf_threads.h has the why of both).
#pragma once

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>

namespace deeplab_caffe {
namespace permutohedral {

// Threads for the small and the big steps.
struct CrfThreadCounts {
  int small, big;
};

// Threads for the small and the big steps when `others` runnable tasks of other processes share
// `cores` cores and torch allows `most`: the small steps take the cores left free, at least one.
// The big steps take two threads where the others keep every core busy (each thread of ours then
// gets an equal share of the machine, so two get more than one); where a core is free but not
// two, one thread has that core to itself, while two would share the cores with the others and
// the scheduler, which places threads per core, leaves one of ours on a busy core: no faster.
inline CrfThreadCounts threads_for_load(int most, long cores, int others) {
  const int small = (int)std::clamp<long>(cores - others, 1, std::max(most, 1));
  return {small, others >= cores ? std::max(small, std::min(2, most)) : small};
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// A reusable barrier for a fixed number of threads that spins for up to kSpinMicros and then
// sleeps (a futex on Linux, else yields).  The last thread to arrive opens the next generation
// and makes the futex call only when some waiter sleeps: a waiter counts itself as sleeping
// before it checks the generation a last time, and the opener bumps the generation before it
// reads that count (both sequentially consistent), so one of the two always sees the other.
class SpinBarrier {
 public:
  // Long enough for a step's threads on a quiet machine to meet without a sleep (they finish a
  // balanced step microseconds apart); short enough that a waiter on a busy machine, where the
  // other thread may be descheduled for a time slice, burns little.
  static constexpr int kSpinMicros = 50;

  explicit SpinBarrier(int parties) : parties_(parties) {}
  SpinBarrier(const SpinBarrier&) = delete;
  SpinBarrier& operator=(const SpinBarrier&) = delete;

  void wait() {
    const uint32_t gen = gen_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == parties_) {
      arrived_.store(0, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_seq_cst);
      if (sleeping_.load(std::memory_order_seq_cst) > 0) wake_all();
      return;
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    for (int i = 1;; ++i) {
      if (gen_.load(std::memory_order_acquire) != gen) return;
      cpu_relax();
      if (i % 64 == 0 && std::chrono::steady_clock::now() > until) break;
    }
    sleeping_.fetch_add(1, std::memory_order_seq_cst);
    while (gen_.load(std::memory_order_seq_cst) == gen) sleep_while(gen);
    sleeping_.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "futex word");
  uint32_t* word() { return reinterpret_cast<uint32_t*>(&gen_); }
  void sleep_while(uint32_t gen) {
#ifdef __linux__
    syscall(SYS_futex, word(), FUTEX_WAIT_PRIVATE, gen, nullptr, nullptr, 0);
#else
    (void)gen;
    sched_yield();
#endif
  }
  void wake_all() {
#ifdef __linux__
    syscall(SYS_futex, word(), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#endif
  }

  const int parties_;
  std::atomic<uint32_t> gen_{0};
  std::atomic<int> arrived_{0}, sleeping_{0};
};

// One thread's share of a step that a team splits (rows [begin(n), end(n)) of n) and its barrier.
struct TeamPart {
  int tid = 0, parts = 1;
  SpinBarrier* barrier = nullptr;
  int64_t begin(int64_t n) const { return n * tid / parts; }
  int64_t end(int64_t n) const { return n * (tid + 1) / parts; }
  void sync() const {
    if (parts > 1) barrier->wait();
  }
};

}  // namespace permutohedral
}  // namespace deeplab_caffe
