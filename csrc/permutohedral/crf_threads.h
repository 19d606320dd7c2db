// How many threads the CPU CRF's parallel loops use, those loops, and the two-thread team the
// fused mean-field iterations run on.
//
// A mean-field iteration is a chain of short dependent steps (two splats, 3 + 6 blur passes,
// the update), each one parallel region ending in a barrier.  On a machine whose cores are busy
// with other processes, one of our threads is regularly descheduled and every barrier waits for
// it (a time slice, milliseconds): many short regions on two threads then run slower than one.
// So each CRF call, and each iteration, counts the other processes that are running now and
// over the last minute (/proc/loadavg, less our own threads) and uses only the cores left free
// for the SMALL steps (blur passes, the splat halves' sum, fills, row loops), at least one and at
// most torch's thread count; with one thread they run inline, with no parallel region at all.
// The BIG steps -- the fixed halves of the splat and of the update with the next splat, the
// build's embedding, insert halves and neighbour search, each many milliseconds per thread --
// also keep two threads where other processes keep every core busy (crf_big_threads): the
// scheduler then gives each runnable thread an equal share, so next to two busy processes on two
// cores two threads of ours get a whole core where one gets two thirds, and a step that long
// pays its one barrier wait back many times.
// The fused iterations (<= 2 threads) run as one region per call on a team of two
// (crf_team_of_two) whose threads meet at our own barrier (SpinBarrier, crf_team.h): it spins for
// a few tens of microseconds and then sleeps on a futex, so on a quiet machine a step pays no
// wake-up (torch keeps OMP_WAIT_POLICY=PASSIVE, whose waiters sleep at once and must be woken for
// every region) and on a busy one a waiter gives its core away after a moment.  Where the load
// leaves the big steps one thread (a core free, but not two: that thread has it to itself, while
// two would share the cores with the others, one of ours on a busy core), everything runs on one
// thread, and a team that gets there mid-call lets its second thread go: kept idle, it would
// sleep at every meeting, and each of its wake-ups on a busy machine waits for a core.
// Every loop's result is independent of the thread count (the splat halves, the vertex numbering
// and the row loops are fixed partitions), so adapting it never changes a bit.
// DEEPLAB_CAFFE_CRF_THREADS=fixed turns the adaptation off (benchmarks); unset or adaptive keeps it.
// Included by the CPU kernels only (not by the CUDA or emulated builds).
#pragma once

#include "common.h"

#include <ATen/Parallel.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "permutohedral/crf_team.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

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

// DEEPLAB_CAFFE_CRF_THREADS: unset or adaptive (follow the load), fixed (torch's count for every
// step), or others:N[,N...] (as if N other tasks kept every sample busy, the list taken in turn
// by the samples of this thread: tests reach every path of the team without a busy machine).
inline const char* crf_threads_mode() {
  const char* env = std::getenv("DEEPLAB_CAFFE_CRF_THREADS");
  DC_CHECK_ARG(!env || !*env || !std::strcmp(env, "fixed") || !std::strcmp(env, "adaptive") ||
                   !std::strncmp(env, "others:", 7),
               "DEEPLAB_CAFFE_CRF_THREADS must be unset, adaptive, fixed or others:N[,N...], "
               "got '", env, "'");
  return env ? env : "";
}

inline thread_local unsigned t_fake_sample = 0;

// The next of the counts of mode = "others:N,..." (the samples cycle through the list).
inline int fake_others(const char* mode) {
  std::vector<long> counts;
  for (const char* p = mode + 7;;) {
    char* end;
    const long n = std::strtol(p, &end, 10);
    DC_CHECK_ARG(end != p && n >= 0 && (*end == ',' || *end == '\0'),
                 "DEEPLAB_CAFFE_CRF_THREADS=others: wants counts >= 0 separated by commas, got '",
                 mode, "'");
    counts.push_back(n);
    if (!*end) break;
    p = end + 1;
  }
  return (int)counts[t_fake_sample++ % counts.size()];
}

// The other processes' runnable count at this thread's last sample.
inline thread_local int t_last_others_now = 0;

// Threads for the next steps (threads_for_load), the other processes counted twice, and the
// larger count wins: now (runnable tasks less our running threads) and over the last minute (the
// load average less our own threads, as if we ran all the time): a busy machine's runnable count
// dips for a moment now and then, and a step that starts its threads in such a dip then waits
// for them at every barrier.  The lag of the average only keeps us on fewer threads for a while
// after the load has gone, which costs far less.  "Now" is the smaller of this sample and the
// previous one (an iteration earlier, or the previous call's last): on a quiet machine another
// task is runnable for a moment at a sample now and then, and taking that for load ran the rest
// of a call on one thread (two threads at 500x375: 16 such samples in 15 calls, median 152 ms
// against 122 with the adaptation off; with the smaller of two, 1-2 samples and 117-140 ms); a
// load that lasts is seen one sample later.
inline CrfThreadCounts crf_threads(int most) {
  const char* mode = crf_threads_mode();
  if (most <= 1 || !std::strcmp(mode, "fixed")) return {most, most};
  double load1;
  int running;
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (!std::strncmp(mode, "others:", 7)) return threads_for_load(most, cores, fake_others(mode));
  if (!machine_load(&load1, &running) || cores < 1) return {most, most};
  const int sampled = running - own_running_threads();
  const int now = std::min(sampled, t_last_others_now);
  t_last_others_now = sampled;
  const int recent = (int)(load1 - most + 0.5);
  return threads_for_load(most, cores, std::max({0, now, recent}));
}

// The thread counts of the CRF call running on this thread (0: none running, use torch's).  A
// per-call setting rather than an argument: splat_blur_cpu's declaration is shared with the CUDA
// and emulated builds, which have no use for it.
inline thread_local int t_crf_threads = 0;
inline thread_local int t_crf_big_threads = 0;

// The calling thread's OpenMP team size (omp_set_num_threads, which affects no other thread).
inline void set_crf_team(int n) {
#ifdef _OPENMP
  if (omp_get_max_threads() != n) omp_set_num_threads(n);
#else
  (void)n;
#endif
}

// Sets this thread's CRF thread count for one call (build, filter or mean-field) and restores
// the previous one after; resample() adapts it again (each mean-field iteration).  With OpenMP
// the calling thread's own team size (omp_set_num_threads, which affects no other thread) follows
// it too, so the ATen ops the call runs (zeros, copies) do not start threads the machine cannot
// give either: on a busy machine such a small op's region waited ~100 ms for a descheduled
// thread.
class CrfThreadsScope {
 public:
  CrfThreadsScope()
      : saved_(t_crf_threads), saved_big_(t_crf_big_threads), most_(at::get_num_threads()) {
    resample();
  }
  ~CrfThreadsScope() {
    t_crf_threads = saved_;
    t_crf_big_threads = saved_big_;
    set_crf_team(most_);
  }
  CrfThreadsScope(const CrfThreadsScope&) = delete;
  CrfThreadsScope& operator=(const CrfThreadsScope&) = delete;
  void resample() {
    const CrfThreadCounts n = crf_threads(most_);
    t_crf_threads = n.small;
    t_crf_big_threads = n.big;
    set_crf_team(t_crf_threads);
  }

 private:
  int saved_, saved_big_, most_;
};

// Threads for a small step: the cores the machine has free (see crf_threads).
inline int crf_small_threads() {
  return t_crf_threads > 0 ? t_crf_threads : at::get_num_threads();
}

// Threads for a big step (see crf_threads).
inline int crf_big_threads() {
  return t_crf_big_threads > 0 ? t_crf_big_threads : at::get_num_threads();
}

// at::parallel_for over at most `threads` chunks: inline when one, else chunks of at least
// ceil(n / threads) (at::parallel_for starts no more threads than chunks), the calling thread's
// team widened for the region when the step may use more threads than the small steps.
template <class F>
void crf_parallel_on(int threads, int64_t begin, int64_t end, int64_t grain, const F& f) {
  if (begin >= end) return;
  if (threads <= 1) {
    f(begin, end);
    return;
  }
  const int64_t even = (end - begin + threads - 1) / threads;
  const int team = at::get_num_threads();
  if (threads != team) set_crf_team(threads);
  at::parallel_for(begin, end, std::max(grain, even), f);
  set_crf_team(t_crf_threads > 0 ? t_crf_threads : team);  // f may have resampled
}

// A small step's loop.
template <class F>
void crf_parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  crf_parallel_on(crf_small_threads(), begin, end, grain, f);
}

// A big step's loop (the fixed halves: end - begin = 2 and grain 1).
template <class F>
void crf_parallel_big(int64_t begin, int64_t end, int64_t grain, const F& f) {
  crf_parallel_on(crf_big_threads(), begin, end, grain, f);
}

// Runs body(tid, team, barrier) once on each thread of a team of two where a big step may use
// two threads (team = 2, tid 0 the calling thread), else once inline (tid 0, team 1).  The body
// meets the other thread only through `barrier` (both must call wait() equally often) and must
// not throw once it has waited: the other thread would wait for ever.
template <class F>
void crf_team_of_two(const F& body) {
  SpinBarrier barrier(2);
  if (crf_big_threads() < 2) {
    body(0, 1, barrier);
    return;
  }
  // One chunk per thread; a team that got a single thread (a nested call) runs both chunks in
  // one call, which then works alone.
  crf_parallel_on(2, 0, 2, 1, [&](int64_t b, int64_t e) {
    body((int)b, e - b > 1 ? 1 : 2, barrier);
  });
}

}  // namespace permutohedral
}  // namespace deeplab_caffe
