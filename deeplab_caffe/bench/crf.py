"""Benchmark: our dense CRF (CPU or CUDA) against pydensecrf on the same inputs.

DeepLab-LargeFOV parameters (bi_w 4, bi_xy_std 121, bi_rgb_std 5, pos_w 3, pos_xy_std 3), 21
labels, 10 iterations, NORMALIZE_AFTER (DeepLab v1) on both sides, images of 500x375, 513x513 and
about 2 megapixels.  Reports the lattice build and the iterations separately, lattice vertices per
pixel for both kernels, and the label agreement and max |dQ| against pydensecrf.

    python tools/bench_crf.py [--device cpu|cuda] [--quick] [--json out.json] [--threads N]
                              [--cpu-time] [--repeats R] [--load K] [--api dense_crf|dropin|both]
                              [--vs-one-thread] [--profile] [--sizes WxH,...]

--api dropin times the pydensecrf drop-in (deeplab_caffe.crf.densecrf) instead of dense_crf's ops;
--api both times the two in the same rounds (the drop-in's time over dense_crf's, median).
--load K runs K busy processes in the background for the whole benchmark (a shared machine).
--vs-one-thread also times our CRF with one thread, alternating with the others.
Runs alternate between the sides; the JSON has each side's best run and, per phase, the median,
min, max and spread ((max - min) / median) over the runs.

On a machine shared with other jobs, --threads 1 --cpu-time compares single-thread CPU time
(time.process_time), which other processes disturb much less than wall time.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from .. import build_info
from ..crf.pairwise import compat_tensor, kernel_norms
from ..data.synthetic import synthetic_photo
from ..ops.crf import Kernel, build_lattice, meanfield
from .crf_profile import print_profile, profile
from .load import busy_processes, load_average
from .timing import sync

PARAMS = dict(bi_w=4.0, bi_xy_std=121.0, bi_rgb_std=5.0, pos_w=3.0, pos_xy_std=3.0)
SIZES = [(500, 375), (513, 513), (1632, 1224)]     # (width, height); the last is 2.0 MP
LABELS = 21
ITERS = 10
clock = time.perf_counter          # --cpu-time: time.process_time


def photo(w, h, seed):
    """(h, w, 3) uint8 scene: shaded background, many shapes of flat colour, blur, noise."""
    return synthetic_photo(w, h, seed, num_shapes=25, min_size=20, max_frac=3, blur=1.5,
                           noise_dtype=np.float32)


def unary_for(img, seed):
    """(L, h*w) float32 energies -log softmax of colour-driven noisy logits."""
    rng = np.random.default_rng(seed)
    h, w, _ = img.shape
    t = torch.from_numpy(img.reshape(-1, 3).astype(np.float32) / 60.0)
    logits = t @ torch.from_numpy(rng.normal(size=(3, LABELS)).astype(np.float32))
    logits += torch.from_numpy(rng.normal(0, 1.5, (h * w, LABELS)).astype(np.float32))
    return np.ascontiguousarray((-torch.log_softmax(logits, 1)).t().numpy())


def features(img, device):
    h, w, _ = img.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    xy = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)
    rgb = torch.from_numpy(img.reshape(-1, 3).astype(np.float32))
    pos = xy / torch.full_like(xy, PARAMS["pos_xy_std"])
    bi = torch.cat([xy / torch.full_like(xy, PARAMS["bi_xy_std"]),
                    rgb / torch.full_like(rgb, PARAMS["bi_rgb_std"])], 1)
    return pos.contiguous().to(device), bi.contiguous().to(device)


def best_of(best, timing, out):
    """Keeps the faster of two runs' build and iteration times (each phase's own best)."""
    if best is not None:
        for key in ("build_s", "iter_s"):
            timing[key] = min(timing[key], best[key])
        timing["total_s"] = timing["build_s"] + timing["iter_s"]
    return timing, out


def run_ours(img, U, device):
    pos, bi = features(img, device)
    unary = torch.from_numpy(U).t().contiguous().to(device)
    sync(device)
    t0 = clock()
    kernels = []
    for f, w in ((pos, PARAMS["pos_w"]), (bi, PARAMS["bi_w"])):
        lat = build_lattice(f)
        kernels.append(Kernel(lat, *kernel_norms(lat, "NORMALIZE_AFTER"),
                              compat_tensor(w, LABELS, device)))
    sync(device)
    t1 = clock()
    q = meanfield(unary, kernels, ITERS)
    sync(device)
    t2 = clock()
    P = unary.shape[0]
    return dict(build_s=t1 - t0, iter_s=t2 - t1, total_s=t2 - t0,
                m2_per_pixel=kernels[0].lattice.num_vertices / P,
                m5_per_pixel=kernels[1].lattice.num_vertices / P), q.t().cpu().numpy()


def run_dropin(img, U, device):
    """run_ours through the pydensecrf drop-in (DenseCRF2D ... inference), from the same numpy
    arrays a pydensecrf user passes."""
    from ..crf import densecrf as dc
    h, w, _ = img.shape
    sync(device)
    t0 = clock()
    d = dc.DenseCRF2D(w, h, LABELS, device=device)
    d.setUnaryEnergy(U)
    d.addPairwiseGaussian(sxy=PARAMS["pos_xy_std"], compat=PARAMS["pos_w"],
                          normalization=dc.NORMALIZE_AFTER)
    d.addPairwiseBilateral(sxy=PARAMS["bi_xy_std"], srgb=PARAMS["bi_rgb_std"], rgbim=img,
                           compat=PARAMS["bi_w"], normalization=dc.NORMALIZE_AFTER)
    sync(device)
    t1 = clock()
    q = d.inference(ITERS)
    sync(device)
    t2 = clock()
    P = w * h
    return dict(build_s=t1 - t0, iter_s=t2 - t1, total_s=t2 - t0,
                m2_per_pixel=d._kernels[0].lattice.num_vertices / P,
                m5_per_pixel=d._kernels[1].lattice.num_vertices / P), np.asarray(q)


def run_one_thread(run, img, U, device):
    """run(img, U, device) with torch's intra-op pool limited to one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(img, U, device)
    finally:
        torch.set_num_threads(threads)


def summary(runs):
    """Per phase of a side's runs: median, min, max and spread ((max - min) / median)."""
    out = {}
    for key in ("build_s", "iter_s", "total_s"):
        v = np.array([r[key] for r in runs])
        med = float(np.median(v))
        out[key] = dict(median=med, min=float(v.min()), max=float(v.max()),
                        spread=float((v.max() - v.min()) / med) if med > 0 else 0.0)
    return out


def run_pydensecrf(img, U):
    import pydensecrf.densecrf as dcrf
    h, w, _ = img.shape
    t0 = clock()
    d = dcrf.DenseCRF2D(w, h, LABELS)
    d.setUnaryEnergy(U)
    d.addPairwiseGaussian(sxy=PARAMS["pos_xy_std"], compat=PARAMS["pos_w"],
                          normalization=dcrf.NORMALIZE_AFTER)
    d.addPairwiseBilateral(sxy=PARAMS["bi_xy_std"], srgb=PARAMS["bi_rgb_std"], rgbim=img,
                           compat=PARAMS["bi_w"], normalization=dcrf.NORMALIZE_AFTER)
    t1 = clock()
    q = np.array(d.inference(ITERS))
    t2 = clock()
    return dict(build_s=t1 - t0, iter_s=t2 - t1, total_s=t2 - t0), q


def cuda_modes(device, repeats):
    """500x375 iterations under each DEEPLAB_CAFFE_CRF_CUDA mode: the fused update replayed as a
    CUDA graph (the default), the fused update launched directly, one kernel per step."""
    img = photo(500, 375, 0)
    U = unary_for(img, 100)
    old = os.environ.get("DEEPLAB_CAFFE_CRF_CUDA")
    out = {}
    try:
        for mode in ("graph", "fused", "plain"):
            os.environ["DEEPLAB_CAFFE_CRF_CUDA"] = mode
            best = None
            for _ in range(repeats + 1):  # the first run warms up
                best, _q = best_of(best, *run_ours(img, U, device))
            out[mode] = dict(iter_ms=1e3 * best["iter_s"], total_ms=1e3 * best["total_s"])
            print(f"500x375 CUDA mode {mode:>5}: iterations {out[mode]['iter_ms']:.3f} ms, "
                  f"total {out[mode]['total_ms']:.3f} ms")
    finally:
        if old is None:
            os.environ.pop("DEEPLAB_CAFFE_CRF_CUDA", None)
        else:
            os.environ["DEEPLAB_CAFFE_CRF_CUDA"] = old
    return out


def check_targets(rows, device):
    """The issue's speed targets at 500x375: on a GPU the 10 iterations <= 1 ms and the whole call
    <= 3 ms; on the CPU >= 2x pydensecrf's total time (only when it ran)."""
    row = next((r for r in rows if r["image"] == "500x375"), None)
    if row is None:
        return []
    if device.type == "cuda":
        return [dict(name="500x375 iterations", value=1e3 * row["ours"]["iter_s"], unit="ms",
                     want="<= 1 ms", met=row["ours"]["iter_s"] <= 1e-3),
                dict(name="500x375 build + iterations", value=1e3 * row["ours"]["total_s"],
                     unit="ms", want="<= 3 ms", met=row["ours"]["total_s"] <= 3e-3)]
    if "speedup_total" not in row:
        return []
    return [dict(name="500x375 speed vs pydensecrf", value=row["speedup_total"], unit="x",
                 want=">= 2x", met=row["speedup_total"] >= 2.0)]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="500x375 only")
    ap.add_argument("--sizes", help="comma-separated WxH images instead (e.g. 500x375,513x513)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    ap.add_argument("--no-pydensecrf", action="store_true", help="skip the pydensecrf baseline")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with process CPU time instead of wall time (CPU only)")
    ap.add_argument("--backward", action="store_true", help="also time the differentiable "
                    "mean field's backward against the fused forward at 500x375")
    ap.add_argument("--repeats", type=int, default=5, help="R alternating runs after a warm-up "
                    "(default 5; pydensecrf runs once at 2 MP)")
    ap.add_argument("--load", type=int, default=0, help="K busy background processes")
    ap.add_argument("--api", default="dense_crf", choices=["dense_crf", "dropin", "both"],
                    help="our ops (dense_crf), the pydensecrf drop-in, or both alternating")
    ap.add_argument("--vs-one-thread", action="store_true",
                    help="also time ours on one thread, alternating (CPU)")
    ap.add_argument("--profile", action="store_true",
                    help="one-thread phase profile of dense_crf at 500x375 (CPU), in the JSON")
    args = ap.parse_args(argv)
    if args.cpu_time and args.device != "cpu":
        ap.error("--cpu-time measures CPU work: use it with --device cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but no CUDA GPU is available")
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.sizes:
        try:
            args.sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
        except ValueError:
            args.sizes = None
        if not args.sizes or any(len(s) != 2 or min(s) < 1 for s in args.sizes):
            ap.error("--sizes must be WxH[,WxH...] with positive sizes, e.g. 500x375,513x513")
    if args.load < 0:
        ap.error(f"--load must be >= 0, got {args.load}")
    return args


def have_pydensecrf():
    try:
        import pydensecrf.densecrf  # noqa: F401
        return True
    except ImportError:
        return False


def bench_image(index, w, h, device, repeats, have_ref, api="dense_crf", vs_one_thread=False):
    """One image size: our CRF (and pydensecrf's, and ours on one thread) timed ``repeats``
    times, alternating; the result row."""
    img = photo(w, h, index)
    U = unary_for(img, 100 + index)
    # api both: dense_crf is "ours", the drop-in a side of its own, timed in the same rounds.
    ours_run = run_dropin if api == "dropin" else run_ours
    # One untimed run of each first: a process's first call pays one-off costs (CUDA
    # context and kernel loading, OpenMP thread start, the allocator growing its heap).
    ours_run(img, U, device)
    if have_ref and w * h <= 1e6:
        run_pydensecrf(img, U)
    # Runs alternate (ours, pydensecrf, ours on one thread, ours, ...): on a machine shared with
    # other jobs a slow spell then hits every side, not just one.
    ref_repeats = (1 if w * h > 1e6 else repeats) if have_ref else 0
    ours = ref = one = None
    runs = dict(ours=[], pydensecrf=[], ours_1thread=[], dropin=[])
    for r in range(max(repeats, ref_repeats)):
        if r < repeats:
            t, q = ours_run(img, U, device)
            runs["ours"].append(dict(t))
            ours, q = best_of(ours, t, q)
        if r < ref_repeats:
            t, qr = run_pydensecrf(img, U)
            runs["pydensecrf"].append(dict(t))
            ref, qr = best_of(ref, t, qr)
        if api == "both" and r < repeats:
            t, _q = run_dropin(img, U, device)
            runs["dropin"].append(dict(t))
        if vs_one_thread and r < repeats:
            t, _q = run_one_thread(ours_run, img, U, device)
            runs["ours_1thread"].append(dict(t))
            one, _q = best_of(one, t, _q)
    row = dict(image=f"{w}x{h}", pixels=w * h, api=api, ours=ours,
               runs={k: summary(v) for k, v in runs.items() if v})
    med = {k: v["total_s"]["median"] for k, v in row["runs"].items()}
    if api == "both":
        row["dropin_vs_dense_crf_median"] = med["dropin"] / med["ours"]
    if vs_one_thread:
        row["ours_1thread"] = one
        row["speedup_vs_one_thread_median"] = med["ours_1thread"] / med["ours"]
    if have_ref:
        row["pydensecrf"] = ref
        row["label_agreement"] = float((q.argmax(0) == qr.argmax(0)).mean())
        row["max_abs_dq"] = float(np.abs(q - qr).max())
        row["speedup_total"] = ref["total_s"] / ours["total_s"]
        row["speedup_median"] = med["pydensecrf"] / med["ours"]
        if vs_one_thread:
            row["speedup_1thread_median"] = med["pydensecrf"] / med["ours_1thread"]
    return row


def print_row(row, device):
    r = row["ours"]
    extra = (f"{100 * row['label_agreement']:>8.3f} {row['max_abs_dq']:>8.1e} "
             f"{row['speedup_total']:>7.2f}x") if "pydensecrf" in row else ""
    print(f"{row['image']:>10} {'ours-' + device.type:>12} {1e3 * r['build_s']:>9.1f} "
          f"{1e3 * r['iter_s']:>9.1f} {1e3 * r['total_s']:>9.1f} {r['m2_per_pixel']:>6.3f} "
          f"{r['m5_per_pixel']:>6.3f} {extra}")
    if "pydensecrf" in row:
        r = row["pydensecrf"]
        print(f"{'':>10} {'pydensecrf':>12} {1e3 * r['build_s']:>9.1f} "
              f"{1e3 * r['iter_s']:>9.1f} {1e3 * r['total_s']:>9.1f}")
    for side, runs in row.get("runs", {}).items():
        t = runs["total_s"]
        print(f"{'':>10} {side + ' median':>20} {1e3 * runs['build_s']['median']:>9.1f} "
              f"{1e3 * runs['iter_s']['median']:>9.1f} {1e3 * t['median']:>9.1f}  "
              f"(min {1e3 * t['min']:.1f}, max {1e3 * t['max']:.1f}, spread {t['spread']:.2f})")
    ratios = [(k, row[k]) for k in ("speedup_median", "speedup_1thread_median",
                                    "speedup_vs_one_thread_median", "dropin_vs_dense_crf_median")
              if k in row]
    if ratios:
        print(f"{'':>10} " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios))
    sys.stdout.flush()


def main(argv=None):
    args = parse_args(argv)
    global clock
    if args.cpu_time:
        clock = time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    have_ref = not args.no_pydensecrf and have_pydensecrf()
    sizes = args.sizes or (SIZES[:1] if args.quick else SIZES)
    info = dict(build_info(), device=str(device), threads=torch.get_num_threads(),
                params=PARAMS, labels=LABELS, iterations=ITERS, api=args.api, repeats=args.repeats,
                busy_processes=args.load, cpus=os.cpu_count(), load_before=load_average(),
                clock="process_time" if args.cpu_time else "perf_counter",
                gpu=torch.cuda.get_device_name() if device.type == "cuda" else None)
    print(f"device {device}, {torch.get_num_threads()} threads, api {args.api}, {args.load} busy "
          f"processes, load {info['load_before']}; LargeFOV CRF, {LABELS} labels, {ITERS} "
          f"iterations, NORMALIZE_AFTER; {'CPU' if args.cpu_time else 'wall'} time, best and "
          f"median of {args.repeats}")
    print(f"{'image':>10} {'impl':>12} {'build ms':>9} {'iter ms':>9} {'total ms':>9} "
          f"{'M2/P':>6} {'M5/P':>6} {'agree %':>8} {'max|dQ|':>8} {'speedup':>8}")
    rows = []
    with busy_processes(args.load):
        for i, (w, h) in enumerate(sizes):
            rows.append(bench_image(i, w, h, device, args.repeats, have_ref, args.api,
                                    args.vs_one_thread and device.type == "cpu"))
            print_row(rows[-1], device)
        prof = None
        if args.profile and device.type == "cpu":
            img = photo(500, 375, 0)
            prof = profile(img, unary_for(img, 100), features, PARAMS, LABELS, ITERS)
            print_profile(prof)
    info["load_after"] = load_average()
    modes = cuda_modes(device, args.repeats) if device.type == "cuda" else None
    grad = None
    if args.backward:
        w, h = SIZES[0]
        img = photo(w, h, 0)
        from .crf_backward import describe, run_backward
        grad = run_backward(img, unary_for(img, 100), device, args.repeats)
        print(describe(w, h, grad))
    targets = check_targets(rows, device)
    for t in targets:
        print(f"target {t['name']}: {t['value']:.3g} {t['unit']} (wanted {t['want']}) -> "
              f"{'met' if t['met'] else 'MISSED'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(info=info, results=rows, targets=targets, cuda_modes=modes,
                           backward=grad, profile=prof), fh, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
