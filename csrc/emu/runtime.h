// The emulated CUDA runtime of the emulated build (deeplab_caffe._emu): the streams, events and
// graphs that the kernels' glue uses through dc_rt (device_runtime.h), for kernels that HIP-CPU
// runs on the CPU.  Plain C++, no HIP and no ATen, so it can be read anywhere in a translation
// unit.
//
// Semantics, chosen so the glue's own code paths run as they would on a GPU:
// - Every stream runs its work at once, in call order (one serial order for all streams, which is
//   a legal CUDA schedule); events are counters and waits are no-ops.
// - A stream being captured records each launch (a closure holding the arguments by value)
//   instead of running it; instantiate copies the record, launching the executable graph re-runs
//   the launches in order, and launching it on a stream that is itself captured appends them to
//   that capture (a child graph).  An event recorded on a captured stream makes a stream that
//   waits on it join the capture, as CUDA's fork/join capture does.
// - Capturing the legacy default stream is refused (CUDA's cudaErrorStreamCaptureUnsupported),
//   and so is a second capture of a stream already being captured.
// - A failure hook for tests: DEEPLAB_CAFFE_EMU_FAIL_CAPTURE=begin|end|instantiate (read on every
//   call; 1 means instantiate) makes that step fail, so the glue's fall-back path runs.
// - Counters (stats()) let tests see which path ran.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace dc_emu {

// The codes are CUDA's, so messages and logs read the same.
enum Error : int {
  kSuccess = 0,
  kErrorInvalidValue = 1,
  kErrorIllegalState = 401,
  kErrorStreamCaptureUnsupported = 900,
  kErrorStreamCaptureInvalidated = 901,
  kErrorUnknown = 999,
};
const char* error_string(Error e);

using Launch = std::function<void()>;

struct Stream;

struct Graph {
  std::vector<Launch> launches;
  std::vector<Stream*> joined;  // streams that joined the capture through an event
};

struct GraphExec {
  std::vector<Launch> launches;
};

struct Stream {
  bool legacy = false;
  Graph* capture = nullptr;  // the graph being recorded on this stream, if any
};

struct Event {
  uint64_t records = 0;
  Graph* captured_in = nullptr;  // set when recorded on a captured stream
};

struct Stats {
  int64_t direct_launches = 0;    // kernels run at once
  int64_t captured_launches = 0;  // kernels recorded into a capture
  int64_t captures = 0;           // captures ended successfully
  int64_t instantiations = 0;
  int64_t graph_launches = 0;
  int64_t failed_captures = 0;    // begin, end or instantiate refused or made to fail
};

Stream* legacy_stream();
// The calling thread's current stream (the legacy stream unless set_current_stream was called,
// as torch.cuda.graph makes its side stream current).
Stream* current_stream();
void set_current_stream(Stream* s);
// One of a fixed pool of side streams, round robin (like at::cuda::getStreamFromPool).
Stream* pool_stream();

// Runs `launch` now, or records it when `s` is being captured.
void enqueue(Stream* s, Launch launch);

Error begin_capture(Stream* s);
Error end_capture(Stream* s, Graph** graph);
Error instantiate(GraphExec** exec, Graph* graph);
Error graph_destroy(Graph* graph);
Error exec_destroy(GraphExec* exec);
Error graph_launch(GraphExec* exec, Stream* s);
Error is_capturing(Stream* s, bool* capturing);

Error event_create(Event** e);
Error event_record(Event* e, Stream* s);
Error stream_wait_event(Stream* s, Event* e);
Error event_destroy(Event* e);

// Like cudaGetLastError: the last failure of a runtime call on this thread, then cleared.
Error get_last_error();

Stats stats();
void reset_stats();

}  // namespace dc_emu
