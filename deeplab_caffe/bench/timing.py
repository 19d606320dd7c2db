"""Timing for the benchmarks: wall-clock on the CPU, CUDA events or synchronised wall-clock on
a GPU, and the peak CUDA memory of one call."""
import time

import torch


def sync(device):
    """Waits for the GPU's queued work (a no-op on the CPU), so that a timer brackets it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, iters, warmup):
    """Mean seconds per call of fn over ``iters`` calls after ``warmup`` untimed ones, the whole
    loop bracketed by synchronisation."""
    for _ in range(warmup):
        fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - t) / iters


def time_call(call, device, warmup, repeat):
    """(mean ms, min ms): CUDA events per repetition on the GPU, perf_counter on the CPU."""
    for _ in range(warmup):
        call()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(repeat)]
        for start, end in ev:
            start.record()
            call()
            end.record()
        torch.cuda.synchronize()
        ms = [s.elapsed_time(e) for s, e in ev]
    else:
        ms = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            call()
            ms.append((time.perf_counter() - t0) * 1e3)
    return sum(ms) / len(ms), min(ms)

def peak_extra_mb(call):
    """Peak CUDA memory one call allocates above what is already held (MB): column buffers,
    cuDNN workspaces, outputs and gradients."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = call()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return peak / 2 ** 20
