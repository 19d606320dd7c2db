// The Python module deeplab_caffe._emu: the op library torch.ops.deeplab_caffe_emu (the same
// schemas as torch.ops.deeplab_caffe; the kernels are the .cu files' DC_REGISTER_DEVICE_OPS
// blocks, built against HIP-CPU) and the emulated runtime's test hooks: counters, and a caller's
// capture (what torch.cuda.graph does around the ops) that deeplab_caffe.emu.capture wraps.
#include <torch/extension.h>

#include <c10/core/CPUAllocator.h>

#include <memory>
#include <mutex>
#include <vector>

#include "emu/runtime.h"
#include "op_schemas.h"

TORCH_LIBRARY(deeplab_caffe_emu, m) { deeplab_caffe::define_ops(m); }

namespace {

pybind11::dict runtime_stats() {
  const dc_emu::Stats s = dc_emu::stats();
  pybind11::dict d;
  d["direct_launches"] = s.direct_launches;
  d["captured_launches"] = s.captured_launches;
  d["captures"] = s.captures;
  d["instantiations"] = s.instantiations;
  d["graph_launches"] = s.graph_launches;
  d["failed_captures"] = s.failed_captures;
  return d;
}

// A graph's memory pool: CPU memory allocated during a caller's capture is not freed while the
// graph lives, as CUDA's caching allocator keeps a graph's private pool, so replays may write
// into buffers that the captured op has already released.
struct KeptMemory {
  std::mutex mutex;
  std::vector<c10::DataPtr> held;
};

class CaptureAllocator final : public c10::Allocator {
 public:
  CaptureAllocator(c10::Allocator* base, std::shared_ptr<KeptMemory> kept)
      : base_(base), kept_(std::move(kept)) {}

  c10::DataPtr allocate(size_t n) override {
    c10::DataPtr inner = base_->allocate(n);
    void* data = inner.get();
    auto* ctx = new Ctx{std::move(inner), kept_};
    return {data, ctx, &Ctx::release, c10::Device(c10::kCPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  struct Ctx {
    c10::DataPtr inner;
    std::shared_ptr<KeptMemory> kept;

    static void release(void* p) {
      std::unique_ptr<Ctx> ctx(static_cast<Ctx*>(p));
      std::lock_guard<std::mutex> lock(ctx->kept->mutex);
      ctx->kept->held.push_back(std::move(ctx->inner));
    }
  };

  c10::Allocator* base_;
  std::shared_ptr<KeptMemory> kept_;
};

// The executable graph of a caller's capture, with its memory.
struct CallerGraph {
  dc_emu::GraphExec* exec = nullptr;
  std::shared_ptr<KeptMemory> kept;

  ~CallerGraph() { (void)dc_emu::exec_destroy(exec); }
  void replay() const { TORCH_CHECK(dc_emu::graph_launch(exec, dc_emu::current_stream()) == 0); }
  size_t held_allocations() const {
    std::lock_guard<std::mutex> lock(kept->mutex);
    return kept->held.size();
  }
};

// The capture in progress (one at a time, like torch.cuda.graph on one thread).
struct CallerCapture {
  dc_emu::Stream* stream = nullptr;
  c10::Allocator* base = nullptr;
  std::unique_ptr<CaptureAllocator> allocator;
  std::shared_ptr<KeptMemory> kept;
};
CallerCapture active;

// Highest priority, so torch's own registrations cannot displace the capture allocator.
constexpr uint8_t kAllocatorPriority = 255;

void capture_begin(bool on_legacy_stream) {
  TORCH_CHECK(active.stream == nullptr, "an emulated capture is already in progress");
  dc_emu::Stream* s = on_legacy_stream ? dc_emu::legacy_stream() : dc_emu::pool_stream();
  const dc_emu::Error err = dc_emu::begin_capture(s);
  (void)dc_emu::get_last_error();  // like cudaGetLastError after a failed call: not sticky
  TORCH_CHECK(err == dc_emu::kSuccess, "emulated capture: ", dc_emu::error_string(err));
  active.stream = s;
  active.kept = std::make_shared<KeptMemory>();
  active.base = c10::GetCPUAllocator();
  active.allocator = std::make_unique<CaptureAllocator>(active.base, active.kept);
  c10::SetCPUAllocator(active.allocator.get(), kAllocatorPriority);
  dc_emu::set_current_stream(s);
}

std::shared_ptr<CallerGraph> capture_end() {
  TORCH_CHECK(active.stream != nullptr, "no emulated capture in progress");
  c10::SetCPUAllocator(active.base, kAllocatorPriority);
  dc_emu::set_current_stream(nullptr);
  dc_emu::Graph* graph = nullptr;
  dc_emu::Error err = dc_emu::end_capture(active.stream, &graph);
  auto out = std::make_shared<CallerGraph>();
  out->kept = active.kept;
  // The allocator object is kept: tensors allocated through it release through their own
  // contexts, which do not refer to it.
  static std::vector<std::unique_ptr<CaptureAllocator>> retired;
  retired.push_back(std::move(active.allocator));
  active = CallerCapture();
  if (err == dc_emu::kSuccess) err = dc_emu::instantiate(&out->exec, graph);
  (void)dc_emu::graph_destroy(graph);
  (void)dc_emu::get_last_error();
  TORCH_CHECK(err == dc_emu::kSuccess, "emulated capture: ", dc_emu::error_string(err));
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "deeplab_caffe's CUDA kernels run on the CPU by the HIP CPU runtime "
            "(ops under torch.ops.deeplab_caffe_emu)";
  m.def("runtime_stats", &runtime_stats,
        "Counters of the emulated runtime: direct and captured launches, captures, graphs");
  m.def("reset_runtime_stats", &dc_emu::reset_stats);
  pybind11::class_<CallerGraph, std::shared_ptr<CallerGraph>>(m, "CallerGraph")
      .def("replay", &CallerGraph::replay, "Re-runs the captured launches in order")
      .def("held_allocations", &CallerGraph::held_allocations,
           "How many buffers allocated in the capture and since released the graph keeps");
  m.def("capture_begin", &capture_begin, pybind11::arg("on_legacy_stream") = false,
        "Starts capturing on a side stream made current, as torch.cuda.graph does (on the "
        "legacy stream, which CUDA refuses, with on_legacy_stream=True)");
  m.def("capture_end", &capture_end, "Ends the capture; returns its executable graph");
}
