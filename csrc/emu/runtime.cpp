// The emulated CUDA runtime (semantics in runtime.h).
#include "emu/runtime.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

namespace dc_emu {

namespace {

constexpr int kPoolSize = 32;  // at::cuda's pool size per device

thread_local Error last_error = kSuccess;
thread_local Stream* current = nullptr;

std::mutex stats_mutex;
Stats counters;

template <typename F>
void count(F f) {
  std::lock_guard<std::mutex> lock(stats_mutex);
  f(counters);
}

Error fail(Error e) {
  last_error = e;
  count([](Stats& s) { ++s.failed_captures; });
  return e;
}

// The step the test hook makes fail, if any: "begin", "end" or "instantiate".
bool hook_fails(const char* step) {
  const char* env = std::getenv("DEEPLAB_CAFFE_EMU_FAIL_CAPTURE");
  if (env == nullptr || env[0] == '\0' || std::string(env) == "0") return false;
  const std::string want = std::string(env) == "1" ? "instantiate" : env;
  return want == step;
}

}  // namespace

const char* error_string(Error e) {
  switch (e) {
    case kSuccess: return "no error (emulated)";
    case kErrorInvalidValue: return "invalid argument (emulated cudaErrorInvalidValue)";
    case kErrorIllegalState: return "illegal state (emulated cudaErrorIllegalState)";
    case kErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing or on the legacy stream "
             "(emulated cudaErrorStreamCaptureUnsupported)";
    case kErrorStreamCaptureInvalidated:
      return "capture was invalidated (emulated cudaErrorStreamCaptureInvalidated)";
    default: return "unknown error (emulated cudaErrorUnknown)";
  }
}

Stream* legacy_stream() {
  static Stream legacy{true, nullptr};
  return &legacy;
}

Stream* current_stream() { return current != nullptr ? current : legacy_stream(); }

void set_current_stream(Stream* s) { current = s; }

Stream* pool_stream() {
  static std::array<Stream, kPoolSize> pool;
  static std::atomic<unsigned> next{0};
  return &pool[next++ % kPoolSize];
}

void enqueue(Stream* s, Launch launch) {
  if (s->capture != nullptr) {
    s->capture->launches.push_back(std::move(launch));
    count([](Stats& c) { ++c.captured_launches; });
    return;
  }
  count([](Stats& c) { ++c.direct_launches; });
  launch();
}

Error begin_capture(Stream* s) {
  if (s == nullptr) return fail(kErrorInvalidValue);
  if (s->legacy || s->capture != nullptr || hook_fails("begin"))
    return fail(kErrorStreamCaptureUnsupported);
  s->capture = new Graph();
  return kSuccess;
}

Error end_capture(Stream* s, Graph** graph) {
  if (s == nullptr || graph == nullptr) return fail(kErrorInvalidValue);
  *graph = nullptr;
  if (s->capture == nullptr) return fail(kErrorIllegalState);
  Graph* g = s->capture;
  // Streams that joined through an event leave the capture with it.
  s->capture = nullptr;
  for (Stream* joined : g->joined)
    if (joined->capture == g) joined->capture = nullptr;
  if (hook_fails("end")) {
    delete g;
    return fail(kErrorStreamCaptureInvalidated);
  }
  *graph = g;
  count([](Stats& c) { ++c.captures; });
  return kSuccess;
}

Error instantiate(GraphExec** exec, Graph* graph) {
  if (exec == nullptr || graph == nullptr) return fail(kErrorInvalidValue);
  *exec = nullptr;
  if (hook_fails("instantiate")) return fail(kErrorUnknown);
  *exec = new GraphExec{graph->launches};
  count([](Stats& c) { ++c.instantiations; });
  return kSuccess;
}

Error graph_destroy(Graph* graph) {
  delete graph;
  return kSuccess;
}

Error exec_destroy(GraphExec* exec) {
  delete exec;
  return kSuccess;
}

Error graph_launch(GraphExec* exec, Stream* s) {
  if (exec == nullptr || s == nullptr) return fail(kErrorInvalidValue);
  count([](Stats& c) { ++c.graph_launches; });
  if (s->capture != nullptr) {
    for (const Launch& l : exec->launches) s->capture->launches.push_back(l);
    return kSuccess;
  }
  for (const Launch& l : exec->launches) l();
  return kSuccess;
}

Error is_capturing(Stream* s, bool* capturing) {
  if (s == nullptr || capturing == nullptr) return fail(kErrorInvalidValue);
  *capturing = s->capture != nullptr;
  return kSuccess;
}

Error event_create(Event** e) {
  if (e == nullptr) return fail(kErrorInvalidValue);
  *e = new Event();
  return kSuccess;
}

Error event_record(Event* e, Stream* s) {
  if (e == nullptr || s == nullptr) return fail(kErrorInvalidValue);
  ++e->records;
  e->captured_in = s->capture;
  return kSuccess;
}

Error stream_wait_event(Stream* s, Event* e) {
  if (e == nullptr || s == nullptr) return fail(kErrorInvalidValue);
  if (e->captured_in != nullptr && s->capture == nullptr) {
    if (s->legacy) return fail(kErrorStreamCaptureUnsupported);  // CUDA invalidates the capture
    s->capture = e->captured_in;
    s->capture->joined.push_back(s);
  }
  return kSuccess;
}

Error event_destroy(Event* e) {
  delete e;
  return kSuccess;
}

Error get_last_error() {
  const Error e = last_error;
  last_error = kSuccess;
  return e;
}

Stats stats() {
  std::lock_guard<std::mutex> lock(stats_mutex);
  return counters;
}

void reset_stats() {
  std::lock_guard<std::mutex> lock(stats_mutex);
  counters = Stats();
}

}  // namespace dc_emu
