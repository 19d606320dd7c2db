"""bench_crf --profile: where one thread's dense-CRF time goes (lattice build, normalisation,
and the iterations' splat, blur and fused update, with the next iteration's splat on <= 2
threads), timed inside the C++ loop through DEEPLAB_CAFFE_CRF_PROFILE, and the main-memory
traffic of one iteration against the bandwidth this machine's one core streams at."""
import json
import os
import tempfile
import time

import numpy as np
import torch

from ..crf.pairwise import compat_tensor, kernel_norms
from ..ops.crf import Kernel, build_lattice, meanfield

LANES = 8          # the CPU kernels pad each row of labels to whole SIMD blocks of 8 floats


def stream_bandwidth(mbytes=256, repeats=5):
    """Bytes per second one thread copies (read + write) a buffer much larger than the caches."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = torch.ones(mbytes * 2**18)
        b = torch.empty_like(a)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            b.copy_(a)
            best = min(best, time.perf_counter() - t)
        return 2 * a.numel() * 4 / best
    finally:
        torch.set_num_threads(threads)


def iteration_bytes(P, L, lattices):
    """Main-memory bytes one mean-field iteration streams on one thread, where each Q row is
    splatted as soon as the update makes it (it never goes to memory): -unary read, and per
    kernel each point's corners and weights read once, for its slice and its splat.  The lattice
    rows (M x S floats, a few MB) are left out: they are reused from the cache by the random
    accesses of splat, blur and slice."""
    S = (L + LANES - 1) // LANES * LANES
    total = P * S * 4                                         # -unary in
    for lat in lattices:
        total += P * (lat.dim + 1) * 8                        # offsets + weights
    return total


def profile(img, U, features, params, labels, iters, repeats=3):
    """One-thread phase times (median of ``repeats``) of dense_crf on one image, as a dict."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fd, path = tempfile.mkstemp(suffix=".jsonl")
    os.close(fd)
    old = os.environ.get("DEEPLAB_CAFFE_CRF_PROFILE")
    os.environ["DEEPLAB_CAFFE_CRF_PROFILE"] = path
    try:
        pos, bi = features(img, "cpu")
        unary = torch.from_numpy(U).t().contiguous()
        rows = []
        for _ in range(repeats + 1):                          # the first run warms up
            t = [time.perf_counter()]
            lats = [build_lattice(pos), build_lattice(bi)]
            t.append(time.perf_counter())
            norms = [kernel_norms(lat, "NORMALIZE_AFTER") for lat in lats]
            t.append(time.perf_counter())
            ks = [Kernel(lat, *n, compat_tensor(w, labels, "cpu"))
                  for lat, n, w in zip(lats, norms, (params["pos_w"], params["bi_w"]))]
            meanfield(unary, ks, iters)
            t.append(time.perf_counter())
            rows.append(dict(build_s=t[1] - t[0], norm_s=t[2] - t[1], iter_s=t[3] - t[2]))
        with open(path) as f:
            inner = [json.loads(line) for line in f]
    finally:
        torch.set_num_threads(threads)
        if old is None:
            os.environ.pop("DEEPLAB_CAFFE_CRF_PROFILE", None)
        else:
            os.environ["DEEPLAB_CAFFE_CRF_PROFILE"] = old
        os.unlink(path)
    for row, phases in zip(rows, inner):
        row.update({k: phases[k] for k in ("splat_s", "blur_s", "update_s")})
    rows = rows[1:]
    out = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    P, L = unary.shape
    out["other_s"] = out["iter_s"] - out["splat_s"] - out["blur_s"] - out["update_s"]
    out["vertices"] = [lat.num_vertices for lat in lats]
    out["iteration_mbytes"] = iteration_bytes(P, L, lats) / 1e6
    out["iteration_gbytes_per_s"] = out["iteration_mbytes"] * iters / out["iter_s"] / 1e3
    out["stream_gbytes_per_s"] = stream_bandwidth() / 1e9
    return out


def print_profile(p):
    ms = {k: 1e3 * v for k, v in p.items() if k.endswith("_s")}
    # On one or two threads the CPU loop splats each new Q row right after its update (the
    # splat inside the update's time); splat_s is then the first iteration's splat alone.
    print(f"one-thread profile: build {ms['build_s']:.1f} ms, normalisation {ms['norm_s']:.1f} "
          f"ms, iterations {ms['iter_s']:.1f} ms = first splat {ms['splat_s']:.1f} + blur "
          f"{ms['blur_s']:.1f} + update and next splat {ms['update_s']:.1f} + other "
          f"{ms['other_s']:.1f}")
    print(f"  main-memory traffic {p['iteration_mbytes']:.1f} MB per iteration -> "
          f"{p['iteration_gbytes_per_s']:.2f} GB/s, against {p['stream_gbytes_per_s']:.2f} GB/s "
          f"one core copies")
