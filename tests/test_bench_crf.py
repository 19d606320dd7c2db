"""Smoke test of tools/bench_crf.py: the CPU quick mode runs, reports both phases, and (with
pydensecrf installed) agrees with it and reports the speed target; the bookkeeping (best of runs,
speed-up, target, agreement) on constructed timings and marginals."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from deeplab_caffe.bench import crf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "bench_crf.py")


def run(args, tmp_path):
    out = tmp_path / "bench_crf.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--device", "cpu", "--quick", "--json",
                           str(out)] + args, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout


def test_quick_mode_reports_phases_and_agreement(tmp_path):
    try:
        import pydensecrf.densecrf  # noqa: F401
        have_ref = True
    except ImportError:
        have_ref = False
    start = time.perf_counter()
    data, stdout = run(["--threads", "2"], tmp_path)
    wall = time.perf_counter() - start
    (row,) = data["results"]
    assert row["image"] == "500x375" and row["pixels"] == 500 * 375
    ours = row["ours"]
    # Every timed phase lies inside the process this test watched.
    assert 0 < ours["build_s"] < wall and 0 < ours["iter_s"] < wall and ours["total_s"] < wall
    # Lattice sizes of the LargeFOV kernels on a photo-like image (densecrf: well under 1).
    assert 0.05 < ours["m2_per_pixel"] < 0.3 and 0.05 < ours["m5_per_pixel"] < 0.6
    assert data["info"]["threads"] == 2 and data["info"]["device"] == "cpu"
    if have_ref:
        assert row["label_agreement"] >= 0.999
        assert row["max_abs_dq"] < 1e-4
        assert 0 < row["pydensecrf"]["total_s"] < wall
        (target,) = data["targets"]
        assert target["name"] == "500x375 speed vs pydensecrf" and target["want"] == ">= 2x"
        assert "target 500x375 speed vs pydensecrf" in stdout
    else:
        assert "pydensecrf" not in row and data["targets"] == []


def test_cpu_time_is_refused_on_cuda(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT, "--device", "cuda", "--cpu-time"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--cpu-time" in proc.stderr


def test_best_of_keeps_each_phase_best():
    best, q = crf.best_of(None, dict(build_s=3.0, iter_s=1.0, total_s=4.0), "first")
    assert best == dict(build_s=3.0, iter_s=1.0, total_s=4.0) and q == "first"
    best, q = crf.best_of(best, dict(build_s=1.0, iter_s=5.0, total_s=6.0), "second")
    # Neither run's own total (4 and 6): the one run's build plus the other's iterations.
    assert best == dict(build_s=1.0, iter_s=1.0, total_s=2.0) and q == "second"


@pytest.mark.parametrize("ref_ms, speedup, met", [(30.0, 3.0, True), (15.0, 1.5, False)])
def test_report_of_constructed_runs(monkeypatch, tmp_path, capsys, ref_ms, speedup, met):
    """Ours takes 4 + 6 ms, pydensecrf ref_ms; our labels are all 0, pydensecrf's are 1 on the
    last quarter of the pixels, so 75 % agree and max |dQ| is 1."""
    pixels = 500 * 375
    q_ours = np.zeros((crf.LABELS, pixels), np.float32)
    q_ours[0] = 1
    q_ref = q_ours.copy()
    q_ref[0, 3 * pixels // 4:] = 0
    q_ref[1, 3 * pixels // 4:] = 1
    monkeypatch.setattr(crf, "have_pydensecrf", lambda: True)
    monkeypatch.setattr(crf, "run_ours", lambda img, U, device: (dict(
        build_s=4e-3, iter_s=6e-3, total_s=10e-3, m2_per_pixel=0.1, m5_per_pixel=0.2), q_ours))
    monkeypatch.setattr(crf, "run_pydensecrf", lambda img, U: (dict(
        build_s=ref_ms / 2e3, iter_s=ref_ms / 2e3, total_s=ref_ms / 1e3), q_ref))
    out = tmp_path / "r.json"
    assert crf.main(["--device", "cpu", "--quick", "--repeats", "2", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    (row,) = data["results"]
    assert row["speedup_total"] == pytest.approx(speedup)
    assert row["label_agreement"] == 0.75 and row["max_abs_dq"] == 1.0
    (target,) = data["targets"]
    assert target["met"] is met and target["value"] == pytest.approx(speedup)
    assert ("-> met" if met else "-> MISSED") in capsys.readouterr().out


def test_backward_timing_on_a_small_image(monkeypatch, tmp_path, capsys):
    """--backward times the differentiable mean field's forward and backward (a small image
    here) and reports the ratio against the 2x target in the JSON and the text."""
    monkeypatch.setattr(crf, "SIZES", [(120, 90)])
    out = tmp_path / "b.json"
    assert crf.main(["--device", "cpu", "--quick", "--repeats", "1", "--no-pydensecrf",
                     "--backward", "--json", str(out)]) == 0
    b = json.loads(out.read_text())["backward"]
    assert b["forward_s"] > 0 and b["backward_s"] > 0
    assert b["ratio"] == pytest.approx(b["backward_s"] / b["forward_s"])
    assert "differentiable mean field 120x90" in capsys.readouterr().out
