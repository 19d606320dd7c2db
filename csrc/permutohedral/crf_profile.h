// DEEPLAB_CAFFE_CRF_PROFILE=<file>: each CPU mean-field call appends one JSON line to <file> with
// the seconds its iterations spent splatting, blurring (with the splat halves' sum) and updating
// (slice + compatibility + softmax, fused, and on <= 2 threads the next iteration's splat too:
// splat is then the first iteration's alone), for bench_crf --profile.  Unset (the default) it costs one getenv per call.
// Included by the CPU kernels only.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace deeplab_caffe {
namespace permutohedral {

struct PhaseTimes {
  double splat = 0, blur = 0, update = 0;
};

// The phase times of the mean-field call running on this thread, or null when not profiling.
inline thread_local PhaseTimes* t_phase_times = nullptr;

inline double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Adds the time from its construction to the next lap() (or its end) to one phase's total.
class PhaseLap {
 public:
  explicit PhaseLap(double PhaseTimes::*slot)
      : slot_(slot), t0_(t_phase_times ? seconds_now() : 0) {}
  ~PhaseLap() { lap(slot_); }
  // Charges the time so far to the current phase and starts timing `next`.
  void lap(double PhaseTimes::*next) {
    if (!t_phase_times) return;
    const double t = seconds_now();
    t_phase_times->*slot_ += t - t0_;
    t0_ = t;
    slot_ = next;
  }

 private:
  double PhaseTimes::*slot_;
  double t0_;
};

// Profiles one mean-field call when DEEPLAB_CAFFE_CRF_PROFILE names a file.
class MeanfieldProfile {
 public:
  MeanfieldProfile(int64_t P, int64_t L, int64_t K, int64_t iters)
      : path_(std::getenv("DEEPLAB_CAFFE_CRF_PROFILE")), P_(P), L_(L), K_(K), iters_(iters) {
    if (path_ && *path_) t_phase_times = &times_;
  }
  ~MeanfieldProfile() {
    if (t_phase_times != &times_) return;
    t_phase_times = nullptr;
    if (FILE* f = std::fopen(path_, "a")) {
      std::fprintf(f,
                   "{\"points\": %lld, \"labels\": %lld, \"kernels\": %lld, \"iterations\": %lld, "
                   "\"splat_s\": %.6f, \"blur_s\": %.6f, \"update_s\": %.6f}\n",
                   (long long)P_, (long long)L_, (long long)K_, (long long)iters_, times_.splat,
                   times_.blur, times_.update);
      std::fclose(f);
    }
  }
  MeanfieldProfile(const MeanfieldProfile&) = delete;
  MeanfieldProfile& operator=(const MeanfieldProfile&) = delete;

 private:
  const char* path_;
  int64_t P_, L_, K_, iters_;
  PhaseTimes times_;
};

}  // namespace permutohedral
}  // namespace deeplab_caffe
