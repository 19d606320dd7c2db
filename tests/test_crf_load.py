"""The CPU CRF's thread count adapts to the machine's load (csrc/permutohedral/crf_threads.h)
without changing a bit, its switch is checked, and bench_crf's load and statistics helpers."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from deeplab_caffe.bench import crf as bench
from deeplab_caffe.bench.load import busy_processes
from deeplab_caffe.errors import CRFError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Mean-field on two threads, adaptive, with every core busy, against one thread: bit for bit.
LOAD_SCRIPT = """
import os, torch
from deeplab_caffe.bench import crf as bench
from deeplab_caffe.bench.load import busy_processes
img = bench.photo(160, 120, 3)
U = bench.unary_for(img, 7)
torch.set_num_threads(1)
_, q1 = bench.run_ours(img, U, torch.device("cpu"))
torch.set_num_threads(2)
with busy_processes(os.cpu_count() + 1):
    _, q2 = bench.run_ours(img, U, torch.device("cpu"))
print("equal" if (q1 == q2).all() else "differ")
"""


def test_adaptive_threads_under_load_give_the_same_bits():
    out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT], capture_output=True, text=True,
                         timeout=300, cwd=ROOT,
                         env=dict(os.environ, DEEPLAB_CAFFE_CRF_THREADS="adaptive"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "equal"


# Faked loads (DEEPLAB_CAFFE_CRF_THREADS=others:N,...: the samples' counts of other tasks, in
# turn) drive every path of the two-thread team: quiet (every step on both threads), all cores
# busy (the big steps on two, the small ones on thread 0), one core free (one thread), and the
# load changing between iterations (the team dropping its second thread mid-call).
@pytest.mark.parametrize("others", ["0", "2", "1", "0,2", "2,0", "0,0,2,1", "2,2,1", "0,1"])
def test_faked_loads_give_the_same_bits(monkeypatch, others):
    img = bench.photo(160, 120, 3)
    U = bench.unary_for(img, 7)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        _, q1 = bench.run_ours(img, U, torch.device("cpu"))
        torch.set_num_threads(2)
        monkeypatch.setenv("DEEPLAB_CAFFE_CRF_THREADS", f"others:{others}")
        _, q2 = bench.run_ours(img, U, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(q1, q2)


@pytest.mark.parametrize("mode,message", [
    ("sometimes", "DEEPLAB_CAFFE_CRF_THREADS.*sometimes"),
    ("others:", "others: wants counts.*'others:'"),
    ("others:1,", "others: wants counts"),
    ("others:-1", "others: wants counts"),
    ("others:x", "others: wants counts"),
])
def test_bad_thread_mode_is_refused(monkeypatch, mode, message):
    from deeplab_caffe.ops.crf import build_lattice
    monkeypatch.setenv("DEEPLAB_CAFFE_CRF_THREADS", mode)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(CRFError, match=message):
            build_lattice(torch.rand(50, 2))
    finally:
        torch.set_num_threads(threads)


def test_busy_processes_run_and_stop():
    with busy_processes(2) as procs:
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
    assert all(p.poll() is not None for p in procs)
    with pytest.raises(ValueError, match="-1"):
        with busy_processes(-1):
            pass


def test_summary_median_and_spread():
    runs = [dict(build_s=b, iter_s=2 * b, total_s=3 * b) for b in (1.0, 4.0, 2.0)]
    s = bench.summary(runs)
    assert s["build_s"] == dict(median=2.0, min=1.0, max=4.0, spread=1.5)
    assert s["total_s"]["median"] == 6.0 and s["total_s"]["spread"] == 1.5


def test_dropin_and_one_thread_sides_alternate(monkeypatch, tmp_path):
    """--api dropin times run_dropin, never run_ours; --vs-one-thread adds a side run on one
    thread; the medians' ratios come from the constructed times."""
    calls = []
    q = np.zeros((bench.LABELS, 500 * 375), np.float32)

    def timing(total):
        return dict(build_s=total / 2, iter_s=total / 2, total_s=total, m2_per_pixel=0.1,
                    m5_per_pixel=0.2)

    def dropin(img, U, device):
        calls.append(("dropin", torch.get_num_threads()))
        return timing(0.1 if torch.get_num_threads() == 1 else 0.05), q

    monkeypatch.setattr(bench, "run_ours", lambda *a: pytest.fail("dense_crf was timed"))
    monkeypatch.setattr(bench, "run_dropin", dropin)
    monkeypatch.setattr(bench, "have_pydensecrf", lambda: True)
    monkeypatch.setattr(bench, "run_pydensecrf", lambda img, U: (dict(
        build_s=0.1, iter_s=0.1, total_s=0.2), q))
    torch.set_num_threads(2)
    row = bench.bench_image(0, 500, 375, torch.device("cpu"), 3, True, "dropin", True)
    assert row["api"] == "dropin" and len(calls) == 1 + 2 * 3
    assert [t for _, t in calls[1:]] == [2, 1] * 3
    assert row["speedup_median"] == pytest.approx(4.0)
    assert row["speedup_1thread_median"] == pytest.approx(2.0)
    assert row["speedup_vs_one_thread_median"] == pytest.approx(2.0)


@pytest.mark.parametrize("sizes", ["500", "500x0", "axb", "500x375,"])
def test_bad_sizes_are_refused(sizes, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--sizes", sizes])
    assert "--sizes" in capsys.readouterr().err


def test_both_apis_alternate_in_the_same_rounds(monkeypatch):
    order = []
    q = np.zeros((bench.LABELS, 500 * 375), np.float32)

    def side(name, total):
        def run(img, U, device):
            order.append(name)
            return dict(build_s=0.0, iter_s=total, total_s=total, m2_per_pixel=0.1,
                        m5_per_pixel=0.2), q
        return run

    monkeypatch.setattr(bench, "run_ours", side("dense_crf", 0.2))
    monkeypatch.setattr(bench, "run_dropin", side("dropin", 0.21))
    row = bench.bench_image(0, 500, 375, torch.device("cpu"), 2, False, "both")
    assert order == ["dense_crf"] + ["dense_crf", "dropin"] * 2
    assert row["dropin_vs_dense_crf_median"] == pytest.approx(1.05)
