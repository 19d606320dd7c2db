"""deeplab_caffe/runtime_env.py: what our commands set before torch loads (OpenMP's wait policy,
the thread count, MKL's strict reproducibility), and the point of the last: training the demo
net through our command line gives the same weights at 1 and 2 threads."""
import os
import subprocess
import sys

import pytest

from deeplab_caffe import runtime_env as rt
from deeplab_caffe.data.synthetic import make_synthetic_voc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")


@pytest.mark.parametrize("argv, ours", [
    (["python", "-m", "deeplab_caffe", "train"], True),
    (["python", "-m", "deeplab_caffe.cli.demo", "--quick"], True),
    (["python", "-m", "deeplab_caffe.bench.net", "--pipeline"], True),
    (["python", "-X", "dev", "-u", "-m", "deeplab_caffe"], True),
    (["python", os.path.join(TOOLS, "train_net.py"), "--solver", "s"], True),
    (["/venv/bin/python", "/venv/bin/deeplab-caffe", "test"], True),
    (["python", "-m", "pytest", "tests"], False),
    (["python", "-m", "deeplab_caffex"], False),
    (["python", "-c", "import deeplab_caffe"], False),
    (["python", "my_script.py", os.path.join(TOOLS, "train_net.py")], False),
    (["python"], False),
])
def test_entry_point(argv, ours):
    assert (rt.entry_point(argv) is not None) == ours


def test_user_settings_are_kept():
    assert rt.choices({}, 2, [1]) == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "2",
                                      "MKL_CBWR": "AUTO,STRICT"}
    env = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "4", "MKL_CBWR": "AVX2"}
    assert rt.choices(env, 2, [1]) == {}
    # a spin count of the user's own is their wait policy too
    assert "OMP_WAIT_POLICY" not in rt.choices({"GOMP_SPINCOUNT": "10000"}, 2, [1])


@pytest.mark.parametrize("cores, samples, threads", [
    (2, [1, 1, 1, 1, 1], 2),          # quiet: only us
    (2, [3, 3, 4, 3, 3], 1),          # two busy processes: none free, still one thread
    (2, [2, 2, 2, 2, 2], 1),
    (4, [2, 1, 9, 2, 2], 3),          # one sample's burst does not decide
    (4, [1, 1, 1], 4),
    (2, [None, None], 2),             # no /proc/loadavg: every core
])
def test_free_cores(cores, samples, threads):
    assert rt.free_cores(cores, samples) == threads


def test_running_tasks(tmp_path):
    f = tmp_path / "loadavg"
    f.write_text("5.27 3.10 2.01 3/612 12345\n")
    assert rt.running_tasks(str(f)) == 3
    f.write_text("garbage\n")
    assert rt.running_tasks(str(f)) is None
    assert rt.running_tasks(str(tmp_path / "absent")) is None


def test_nothing_changes_once_torch_is_loaded():
    env = {}
    assert rt.configure(env, ["python", "-m", "deeplab_caffe"]) == {} and env == {}


def _spin_count(argv, **env):
    """libgomp's spin count as torch's OpenMP runtime took it at load (OMP_DISPLAY_ENV)."""
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    full.update(env, OMP_DISPLAY_ENV="verbose", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=full,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [l for l in out.stderr.splitlines() if "GOMP_SPINCOUNT" in l]
    assert lines, out.stderr[-2000:]
    return lines[0].split("=")[1].strip().strip("'")


def test_our_commands_wait_passively_and_user_programs_keep_the_default():
    assert _spin_count([os.path.join(TOOLS, "time_net.py"), "--help"]) == "0"
    assert _spin_count(["-c", "import deeplab_caffe"]) == "300000"
    assert _spin_count([os.path.join(TOOLS, "time_net.py"), "--help"],
                       GOMP_SPINCOUNT="1234") == "1234"


def _has_avx2():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx2" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not _has_avx2(), reason="MKL's strict reproducibility needs AVX2/AVX-512")
def test_demo_training_is_the_same_at_1_and_2_threads(tmp_path):
    """Issue 16: the demo's numbers must not depend on the thread count.  Three iterations are
    enough to catch a thread-dependent sum: oneDNN's convolution backward (the CPU's DEFAULT
    engine) or MKL's gemm outside strict mode already change the first update's bits."""
    data = tmp_path / "data"
    make_synthetic_voc(str(data), num_train=20, num_val=2, size=((96, 128), (96, 128)),
                       num_classes=6, seed=0)
    snapshots = []
    for threads in (1, 2):
        exp = tmp_path / f"t{threads}"
        (exp / "list").mkdir(parents=True)
        for name in ("train_aug.txt", "val.txt"):
            (exp / "list" / name).write_text((data / "list" / name).read_text())
        cmd = [sys.executable, os.path.join(TOOLS, "train_net.py"), "--solver",
               os.path.join(ROOT, "prototxt", "demo", "solver.prototxt"), "--gpu", "-1",
               "--iterations", "3"]
        for d in (f"EXP={exp}", f"DATA_ROOT={data}", "TRAIN_SET=train_aug", "TEST_SET=val",
                  "NUM_LABELS=6"):
            cmd += ["--define", d]
        env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
        env.update(OMP_NUM_THREADS=str(threads), PYTHONPATH=ROOT)
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        snapshots.append((exp / "model" / "demo" / "train_iter_3.caffemodel").read_bytes())
    assert snapshots[0] == snapshots[1]
