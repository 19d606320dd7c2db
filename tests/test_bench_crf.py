"""Smoke test of tools/bench_crf.py: the CPU quick mode runs, reports both phases, and (with
pydensecrf installed) agrees with it and reports the speed target."""
import json
import os
import subprocess
import sys

import pytest

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
    data, stdout = run(["--threads", "2"], tmp_path)
    (row,) = data["results"]
    assert row["image"] == "500x375" and row["pixels"] == 500 * 375
    ours = row["ours"]
    assert ours["build_s"] > 0 and ours["iter_s"] > 0
    assert ours["total_s"] == pytest.approx(ours["build_s"] + ours["iter_s"])
    # Lattice sizes of the LargeFOV kernels on a photo-like image (densecrf: well under 1).
    assert 0.05 < ours["m2_per_pixel"] < 0.3 and 0.05 < ours["m5_per_pixel"] < 0.6
    assert data["info"]["threads"] == 2 and data["info"]["device"] == "cpu"
    if have_ref:
        assert row["label_agreement"] >= 0.999
        assert row["max_abs_dq"] < 1e-4
        (target,) = data["targets"]
        assert target["met"] == (row["speedup_total"] >= 2.0)
        assert "target 500x375 speed vs pydensecrf" in stdout
    else:
        assert "pydensecrf" not in row and data["targets"] == []


def test_cpu_time_is_refused_on_cuda(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT, "--device", "cuda", "--cpu-time"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--cpu-time" in proc.stderr
