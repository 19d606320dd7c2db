"""Smoke test of tools/bench_atrous.py: the CPU quick mode runs and writes per-shape ratios."""
import json
import math
import os
import subprocess
import sys

import pytest

from deeplab_caffe.bench import atrous, atrous_cases
from deeplab_caffe.bench.atrous_cases import LAYERS, cases
from deeplab_caffe.ops import conv_output_size

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "bench_atrous.py")


def run(args, tmp_path, timeout=120):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--device", "cpu", "--quick", "--json",
                           str(out)] + args, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.parametrize("quick", [False, True])
def test_every_layer_keeps_its_spatial_size(quick):
    # DeepLab's conv and fc layers are all "same" convolutions; a wrong table entry shows here.
    selected = cases(quick, None)
    assert len(selected) == 16
    assert {(c[0], c[1]) for c in selected} == {(n, i) for n in LAYERS for i in (513, 321)}
    for name, inp, n, cin, cout, k, pad, hole, h in selected:
        assert conv_output_size((h, h), k, pad, 1, hole) == (h, h), name
        assert n == (1 if inp == 513 else (2 if quick else 10))


def test_quick_mode_writes_ratios_and_small_errors(tmp_path):
    data, stdout = run(["--shapes", "conv5_3,fc6_largefov,fc7", "--repeat", "1"], tmp_path)
    rows = data["results"]
    assert {(r["layer"], r["input"], r["mode"]) for r in rows} == {
        (n, i, m) for n in ("conv5_3", "fc6_largefov", "fc7") for i in (513, 321)
        for m in ("fwd", "fwdbwd")}
    for r in rows:
        assert r["ok"] and "error" not in r, r
        assert r["precision"] == "fp32"
        assert math.isfinite(r["ratio"]) and r["ratio"] > 0
        assert 0 < r["ours_ms_min"] <= r["ours_ms"] and 0 < r["ref_ms_min"] <= r["ref_ms"]
        assert 0 <= r["err"] < 1e-5, r
    assert {r["hole"] for r in rows} == {2, 12, 1} and 1 in {r["kernel"] for r in rows}
    assert data["env"]["device"] == "cpu" and "with_cuda" in data["env"]["build_info"]
    status = {t["target"]: t["status"] for t in data["targets"]}
    assert status["TF32 fwd >= 0.8x on every shape"] == "not measured"
    assert status["FP32 fwd >= 1.5x on LargeFOV fc6"] in ("met", "missed")
    assert "fc6_largefov" in stdout and "CPU" in stdout


def test_budget_sweep_runs_each_budget_in_its_own_process(tmp_path, capsys):
    # In-process parent (torch is already imported here), one child: a torch import costs ~8 s
    # on the busy CI machine.
    out = tmp_path / "sweep.json"
    code = atrous.main(["--device", "cpu", "--quick", "--shapes", "fc6_largefov@321",
                              "--modes", "fwd", "--repeat", "1", "--budgets", "3",
                              "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert [(r["layer"], r["budget_mb"]) for r in data["results"]] == [("fc6_largefov", 3)]
    assert data["results"][0]["ok"] and data["results"][0]["err"] < 1e-5
    # The child really ran under the budget, not the parent's environment.
    assert data["env"]["per_budget"]["3"]["col_budget_mb"] == "3"
    assert "ratio by column budget" in capsys.readouterr().out


@pytest.mark.parametrize("device, ratio", [("cpu", 3.0 / 1.5), ("cuda", 4.0 / 2.0)])
def test_ratio_of_constructed_timings(monkeypatch, device, ratio):
    """The reference takes 4 ms on average (3 at best), ours 2 (1.5): the ratio is the
    reference's time over ours, best of R on the CPU, the mean of CUDA events on a GPU."""
    times = {"ref": (4.0, 3.0), "ours": (2.0, 1.5)}
    calls = []

    def fake_time_call(call, dev, warmup, repeat):
        calls.append(call)
        return times["ref" if len(calls) == 1 else "ours"]
    monkeypatch.setattr(atrous_cases, "time_call", fake_time_call)
    monkeypatch.setattr(atrous_cases, "peak_extra_mb", lambda call: 0.0)
    case = atrous_cases.cases(True, "fc7@321")[0]
    row = atrous_cases.run_case(case, atrous_cases.make_inputs(case, "cpu"), "fwd", "fp32",
                                device, 0, 1)
    assert row["ratio"] == pytest.approx(ratio) and row["ok"], row


@pytest.mark.parametrize("argv, match", [
    (["--shapes", "conv9_9"], "unknown"),
    (["--modes", "bwd"], "--modes"),
    (["--precision", "fp16"], "--precision"),
])
def test_bad_options_are_reported(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        atrous.main(["--device", "cpu"] + argv)
    assert exc.value.code == 2
    assert match in capsys.readouterr().err
