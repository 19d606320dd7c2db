"""tools/bench_net.py's torch.nn LargeFOV computes what our Net computes from
prototxt/DeepLab-LargeFOV/train.prototxt (so the benchmark compares the same network)."""
import os
import subprocess
import sys
import time

import pytest
import torch

import deeplab_caffe as dc
from deeplab_caffe.bench import net as b


def test_reference_equals_our_net():
    # A tracked file: its absence is a broken checkout, so the test fails (no skip).
    torch.manual_seed(0)
    spec = b.net_spec(1, 41, 5, b.PROTOTXT)
    net = dc.Net(spec, phase="TEST", device="cpu")
    b.he_init(net, seed=3)
    fc8 = [n for n in net.layer_names if n.startswith("fc8")][0]
    ref = b.LargeFOV(net, fc8).eval()
    data, label = b.inputs(1, 41, 5, "cpu")
    with torch.no_grad():
        net.forward(end=fc8, data=data, label=label)
        want = ref(data)
    assert net.blobs[fc8].shape == (1, 5, 6, 6) == want.shape    # 41 -> 21 -> 11 -> 6
    torch.testing.assert_close(net.blobs[fc8], want, rtol=1e-4, atol=1e-4 * want.abs().max())


@pytest.mark.parametrize("argv, message", [
    (["--pipeline"], "--load >= 1"),
    (["--pipeline", "--load", "2", "--rounds", "0"], "--rounds >= 1"),
    (["--pipeline", "--load", "2", "--stages", "train,bogus"], "'train,bogus'"),
    (["--load", "-1"], "got -1"),
])
def test_bad_pipeline_flags_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        b.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


ORPHAN = """
import time
from deeplab_caffe.bench.load import busy_processes
with busy_processes(1) as procs:
    print(procs[0].pid, flush=True)
    time.sleep(120)
"""


def _stopped(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc to see the process")
def test_busy_processes_stop_when_their_parent_is_killed():
    # A benchmark killed outright (SIGKILL, no finally) must not leave its load spinning.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True,
                              cwd=root, env=dict(os.environ, PYTHONPATH=root))
    pid = int(parent.stdout.readline())
    assert not _stopped(pid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 60
    while not _stopped(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _stopped(pid)


def test_busy_process_whose_parent_died_before_it_started_stops():
    # The parent's pid is handed over, not read at start-up: a child that starts after its
    # parent was killed (reparented already) sees a different parent and stops at once.
    from deeplab_caffe.bench.load import SPIN
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    done = subprocess.run([sys.executable, "-c", SPIN, str(gone.pid)], timeout=60)
    assert done.returncode == 0
