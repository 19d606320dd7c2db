// The seam between the CUDA kernels' sources and the machine that runs them.  Every .cu file
// includes this header after all its ATen/torch/c10 includes and before its *_kernels.cuh, and
// reaches the CUDA runtime only through what it declares, so the same sources build two ways:
//
// - the real build (nvcc, deeplab_caffe._C, ops in torch.ops.deeplab_caffe for CUDA tensors):
//   everything below maps to CUDA and ATen's CUDA stream API;
// - the emulated build (DEEPLAB_CAFFE_EMU defined, deeplab_caffe._emu; setup.py compiles each .cu
//   as C++ against the HIP CPU runtime in namespace deeplab_caffe_emu): kernels run on the CPU,
//   blocks on TBB threads and the threads of a block as fibers; the ops are registered for CPU
//   tensors in torch.ops.deeplab_caffe_emu, and streams, events and graphs come from the
//   emulated runtime in emu/runtime.h (read its semantics there).
//
// What it provides:
//   DC_LAUNCH(kernel, grid, block, shmem_bytes, stream, args...)   a kernel launch
//   DC_LAUNCH_CHECK()                 after a launch (C10_CUDA_KERNEL_LAUNCH_CHECK)
//   DC_DYNAMIC_SHARED(type, name)     `type* name` over the launch's dynamic shared memory
//   DC_KERNEL_LOOP(i, n)              grid-stride loop; kThreads, num_blocks(n) for launches
//   DC_REGISTER_DEVICE_OPS(m)         TORCH_LIBRARY_IMPL(deeplab_caffe, CUDA, m), or the CPU
//                                     implementation of deeplab_caffe_emu in the emulated build
//   DC_RT_CHECK(expr)                 a dc_rt call that must succeed (C10_CUDA_CHECK)
//   __global__, __device__, __host__, __shared__, __syncthreads, atomics: in both builds;
//   __fmul_rn, __fadd_rn, __fsub_rn, __fdiv_rn, __frcp_rn, __fsqrt_rn: single IEEE float ops
//   in the emulated build (compiled with -ffp-contract=off, so nothing fuses into an FMA);
//   __CUDA_ARCH__ is defined in the emulated build (to 900) so shared headers' device branches
//   are the ones tested.
//   namespace dc_rt (types Stream, Event, Graph, GraphExec, Error; kSuccess):
//     current_stream()                    at::cuda::getCurrentCUDAStream()
//     pool_stream(device)                 at::cuda::getStreamFromPool(false, device)
//     begin_capture(s)                    cudaStreamBeginCapture, thread-local mode
//     end_capture(s, &graph)              cudaStreamEndCapture
//     instantiate(&exec, graph)           cudaGraphInstantiate
//     graph_destroy(graph), exec_destroy(exec), graph_launch(exec, s)
//     is_capturing(s, &bool)              cudaStreamIsCapturing (status != None)
//     event_create(&e)                    timing disabled
//     event_record(e, s), stream_wait_event(s, e), event_destroy(e)
//     get_last_error()                    cudaGetLastError: returns and clears
//     error_string(e)
//     DeviceGuard(device)                 c10::cuda::CUDAGuard; nothing in the emulated build
#pragma once

#include "common.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#if defined(DEEPLAB_CAFFE_EMU)
// ---- emulated build ------------------------------------------------------------------------
#include "emu/runtime.h"

// HIP-CPU redefines __device__, __global__, __HIPCC__ ...: torch's headers must all be read
// before it (common.h above).
#include <hip/hip_runtime.h>

// HIP-CPU leaves __forceinline__ empty unless NDEBUG, which turns header functions into
// multiply defined symbols.
#undef __forceinline__
#define __forceinline__ inline __attribute__((always_inline))

#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 900
#endif

// nvcc's round-to-nearest intrinsics: one IEEE operation each, never contracted (the build uses
// -ffp-contract=off), as nvcc emits them.
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }

namespace dc_rt {
using Stream = dc_emu::Stream*;
using Event = dc_emu::Event*;
using Graph = dc_emu::Graph*;
using GraphExec = dc_emu::GraphExec*;
using Error = dc_emu::Error;
constexpr Error kSuccess = dc_emu::kSuccess;

inline Stream current_stream() { return dc_emu::current_stream(); }
inline Stream pool_stream(c10::DeviceIndex) { return dc_emu::pool_stream(); }
inline Error begin_capture(Stream s) { return dc_emu::begin_capture(s); }
inline Error end_capture(Stream s, Graph* g) { return dc_emu::end_capture(s, g); }
inline Error instantiate(GraphExec* e, Graph g) { return dc_emu::instantiate(e, g); }
inline Error graph_destroy(Graph g) { return dc_emu::graph_destroy(g); }
inline Error exec_destroy(GraphExec e) { return dc_emu::exec_destroy(e); }
inline Error graph_launch(GraphExec e, Stream s) { return dc_emu::graph_launch(e, s); }
inline Error is_capturing(Stream s, bool* capturing) { return dc_emu::is_capturing(s, capturing); }
inline Error event_create(Event* e) { return dc_emu::event_create(e); }
inline Error event_record(Event e, Stream s) { return dc_emu::event_record(e, s); }
inline Error stream_wait_event(Stream s, Event e) { return dc_emu::stream_wait_event(s, e); }
inline Error event_destroy(Event e) { return dc_emu::event_destroy(e); }
inline Error get_last_error() { return dc_emu::get_last_error(); }
inline const char* error_string(Error e) { return dc_emu::error_string(e); }

struct DeviceGuard {
  explicit DeviceGuard(c10::Device) {}
};

namespace detail {
// The arguments are copied into the launch now, as a CUDA launch (and a graph node) takes them;
// a launch runs to completion before the next, the serial order of runtime.h.
template <typename Kernel, typename... Args>
void launch(Stream s, dim3 grid, dim3 block, size_t shmem, Kernel kernel, Args... args) {
  dc_emu::enqueue(s, [=]() {
    hipLaunchKernelGGL(kernel, grid, block, static_cast<std::uint32_t>(shmem), nullptr, args...);
    (void)hipDeviceSynchronize();
  });
}
}  // namespace detail
}  // namespace dc_rt

#define DC_LAUNCH(kernel, grid, block, shmem, stream, ...)                                      \
  ::dc_rt::detail::launch((stream), dim3(grid), dim3(block), (shmem), kernel, __VA_ARGS__)

#define DC_LAUNCH_CHECK()                                                                      \
  do {                                                                                         \
    const ::dc_rt::Error dc_launch_err = ::dc_rt::get_last_error();                            \
    TORCH_CHECK(dc_launch_err == ::dc_rt::kSuccess, "emulated CUDA launch: ",                  \
                ::dc_rt::error_string(dc_launch_err));                                         \
  } while (0)

#define DC_RT_CHECK(expr)                                                                      \
  do {                                                                                         \
    const ::dc_rt::Error dc_rt_err = (expr);                                                   \
    TORCH_CHECK(dc_rt_err == ::dc_rt::kSuccess, "emulated CUDA runtime: ", #expr, ": ",        \
                ::dc_rt::error_string(dc_rt_err));                                             \
  } while (0)

#define DC_DYNAMIC_SHARED(type, name) HIP_DYNAMIC_SHARED(type, name)

#define DC_REGISTER_DEVICE_OPS(m) TORCH_LIBRARY_IMPL(deeplab_caffe_emu, CPU, m)

#else
// ---- real CUDA build -----------------------------------------------------------------------
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cuda_runtime_api.h>

namespace dc_rt {
using Stream = cudaStream_t;
using Event = cudaEvent_t;
using Graph = cudaGraph_t;
using GraphExec = cudaGraphExec_t;
using Error = cudaError_t;
constexpr Error kSuccess = cudaSuccess;

inline Stream current_stream() { return at::cuda::getCurrentCUDAStream().stream(); }
inline Stream pool_stream(c10::DeviceIndex device) {
  return at::cuda::getStreamFromPool(false, device).stream();
}
inline Error begin_capture(Stream s) {
  return cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
}
inline Error end_capture(Stream s, Graph* g) { return cudaStreamEndCapture(s, g); }
inline Error instantiate(GraphExec* e, Graph g) { return cudaGraphInstantiate(e, g, 0); }
inline Error graph_destroy(Graph g) { return cudaGraphDestroy(g); }
inline Error exec_destroy(GraphExec e) { return cudaGraphExecDestroy(e); }
inline Error graph_launch(GraphExec e, Stream s) { return cudaGraphLaunch(e, s); }
inline Error is_capturing(Stream s, bool* capturing) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  const Error err = cudaStreamIsCapturing(s, &status);
  *capturing = status != cudaStreamCaptureStatusNone;
  return err;
}
inline Error event_create(Event* e) {
  return cudaEventCreateWithFlags(e, cudaEventDisableTiming);
}
inline Error event_record(Event e, Stream s) { return cudaEventRecord(e, s); }
inline Error stream_wait_event(Stream s, Event e) { return cudaStreamWaitEvent(s, e, 0); }
inline Error event_destroy(Event e) { return cudaEventDestroy(e); }
inline Error get_last_error() { return cudaGetLastError(); }
inline const char* error_string(Error e) { return cudaGetErrorString(e); }

using DeviceGuard = c10::cuda::CUDAGuard;
}  // namespace dc_rt

#define DC_LAUNCH(kernel, grid, block, shmem, stream, ...)                                      \
  kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__)
#define DC_LAUNCH_CHECK() C10_CUDA_KERNEL_LAUNCH_CHECK()
#define DC_RT_CHECK(expr) C10_CUDA_CHECK(expr)
#define DC_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#define DC_REGISTER_DEVICE_OPS(m) TORCH_LIBRARY_IMPL(deeplab_caffe, CUDA, m)
#endif

// ---- both builds ---------------------------------------------------------------------------
// Grid-stride loop over [0, n).
#define DC_KERNEL_LOOP(i, n)                                                                   \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);                     \
       i += (int64_t)blockDim.x * gridDim.x)

namespace deeplab_caffe {
constexpr int kThreads = 256;
inline int num_blocks(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return (int)std::max<int64_t>(1, std::min<int64_t>(b, 65535LL * 8));
}
}  // namespace deeplab_caffe
