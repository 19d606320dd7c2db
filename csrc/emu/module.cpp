// The Python module deeplab_caffe._emu: the op library torch.ops.deeplab_caffe_emu (the same
// schemas as torch.ops.deeplab_caffe; the kernels are the .cu files' DC_REGISTER_DEVICE_OPS
// blocks, built against HIP-CPU) and the emulated runtime's test hooks.
#include <torch/extension.h>

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

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "deeplab_caffe's CUDA kernels run on the CPU by the HIP CPU runtime "
            "(ops under torch.ops.deeplab_caffe_emu)";
  m.def("runtime_stats", &runtime_stats,
        "Counters of the emulated runtime: direct and captured launches, captures, graphs");
  m.def("reset_runtime_stats", &dc_emu::reset_stats);
}
