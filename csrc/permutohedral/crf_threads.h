// How many threads the CPU CRF's parallel loops use, and those loops.
//
// A mean-field iteration is a chain of short dependent steps (two splats, 3 + 6 blur passes,
// the update), each one parallel region ending in a barrier.  On a machine whose cores are busy
// with other processes, one of our threads is regularly descheduled and every barrier waits for
// it (while OpenMP's spinning waiters take the cycles it needs): two threads then run slower
// than one.  So each CRF call, and each iteration, counts the other processes that are running
// now and over the last minute (/proc/loadavg, less our own threads) and uses only the cores
// left free, at least one and at most torch's thread count; with one thread the loops run inline,
// with no parallel region at all.  Every loop's result is independent of the thread count (the
// splat halves, the vertex numbering and the row loops are fixed partitions), so adapting it
// never changes a bit.  DEEPLAB_CAFFE_CRF_THREADS=fixed turns the adaptation off (benchmarks);
// unset or adaptive keeps it.
// Included by the CPU kernels only (not by the CUDA or emulated builds).
#pragma once

#include "common.h"

#include <ATen/Parallel.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace deeplab_caffe {
namespace permutohedral {

// The machine's load: the 1-minute load average and the tasks runnable now (ours included),
// from /proc/loadavg; false when it cannot be read.
inline bool machine_load(double* load1, int* running) {
  FILE* f = std::fopen("/proc/loadavg", "r");
  if (!f) return false;
  const bool ok = std::fscanf(f, "%lf %*f %*f %d", load1, running) == 2;
  std::fclose(f);
  return ok;
}

// Our own threads that are running now (state R), the calling one included.
inline int own_running_threads() {
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return 1;
  int n = 0;
  char path[64], buf[512];
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
    FILE* f = std::fopen(path, "r");
    if (!f) continue;
    const size_t len = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[len] = '\0';
    const char* close = std::strrchr(buf, ')');  // the name may hold spaces and parentheses
    if (close && close[1] == ' ' && close[2] == 'R') ++n;
  }
  closedir(dir);
  return std::max(n, 1);
}

inline bool adapt_threads() {
  const char* env = std::getenv("DEEPLAB_CAFFE_CRF_THREADS");
  const bool fixed = env && std::strcmp(env, "fixed") == 0;
  DC_CHECK_ARG(!env || !*env || fixed || std::strcmp(env, "adaptive") == 0,
               "DEEPLAB_CAFFE_CRF_THREADS must be unset, adaptive or fixed, got '", env, "'");
  return !fixed;
}

// Threads for the next step: torch's count, less the cores other processes use.  Others are
// counted twice, and the larger count wins: now (runnable tasks less our running threads) and
// over the last minute (the load average less our own threads, as if we ran all the time): a
// busy machine's runnable count dips for a moment now and then, and a step that starts its
// threads in such a dip then waits for them at every barrier.  The lag of the average only keeps
// us on fewer threads for a while after the load has gone, which costs far less.
inline int crf_threads(int most) {
  if (most <= 1 || !adapt_threads()) return most;
  double load1;
  int running;
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (!machine_load(&load1, &running) || cores < 1) return most;
  const int now = running - own_running_threads();
  const int recent = (int)(load1 - most + 0.5);
  const int others = std::max({0, now, recent});
  return (int)std::clamp<long>(cores - others, 1, most);
}

// The thread count of the CRF call running on this thread (0: none running, use torch's).  A
// per-call setting rather than an argument: splat_blur_cpu's declaration is shared with the CUDA
// and emulated builds, which have no use for it.
inline thread_local int t_crf_threads = 0;

// Sets this thread's CRF thread count for one call (build, filter or mean-field) and restores
// the previous one after; resample() adapts it again (each mean-field iteration).  With OpenMP
// the calling thread's own team size (omp_set_num_threads, which affects no other thread) follows
// it too, so the ATen ops the call runs (zeros, copies) do not start threads the machine cannot
// give either: on a busy machine such a small op's region waited ~100 ms for a descheduled
// thread.
class CrfThreadsScope {
 public:
  CrfThreadsScope() : saved_(t_crf_threads), most_(at::get_num_threads()) { resample(); }
  ~CrfThreadsScope() {
    t_crf_threads = saved_;
    set_team(most_);
  }
  CrfThreadsScope(const CrfThreadsScope&) = delete;
  CrfThreadsScope& operator=(const CrfThreadsScope&) = delete;
  void resample() {
    t_crf_threads = crf_threads(most_);
    set_team(t_crf_threads);
  }

 private:
  static void set_team(int n) {
#ifdef _OPENMP
    if (omp_get_max_threads() != n) omp_set_num_threads(n);
#else
    (void)n;
#endif
  }
  int saved_, most_;
};

// at::parallel_for over at most t_crf_threads chunks: inline when one, else chunks of at least
// ceil(n / threads) (at::parallel_for starts no more threads than chunks).
template <class F>
void crf_parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  if (begin >= end) return;
  const int threads = t_crf_threads > 0 ? t_crf_threads : at::get_num_threads();
  if (threads <= 1) {
    f(begin, end);
    return;
  }
  const int64_t even = (end - begin + threads - 1) / threads;
  at::parallel_for(begin, end, std::max(grain, even), f);
}

}  // namespace permutohedral
}  // namespace deeplab_caffe
