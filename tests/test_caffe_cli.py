"""deeplab-caffe (python -m deeplab_caffe): Caffe's command line, its flags, exit codes, glog
files and the train / test / time / device_query commands, in this process."""
import ast
import contextlib
import importlib
import io
import os
import re
import signal
import subprocess
import sys
import time as clock

import numpy as np
import pytest
import torch

from deeplab_caffe import Net
from deeplab_caffe.cli import caffe
from deeplab_caffe.cli.time_net import time_layers
from deeplab_caffe.data.synthetic import make_synthetic_voc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NET = """name: "tiny"
layer { name: "data" type: "ImageSegData" top: "data" top: "label"
  image_data_param { root_folder: "${DATA_ROOT}" source: "${DATA_ROOT}/list/${SET}.txt"
    label_type: PIXEL batch_size: 1 }
  transform_param { mean_value: 104 mean_value: 117 mean_value: 123 crop_size: 12 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 3 kernel_size: 3 pad: 1
    weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "conv1" bottom: "label" top: "loss"
  loss_weight: 2 loss_param { ignore_label: 255 } }
layer { name: "accuracy" type: "Accuracy" bottom: "conv1" bottom: "label" top: "accuracy"
  include { phase: TEST } accuracy_param { ignore_label: 255 axis: 1 } }
"""
SOLVER = """net: "${NET}"
base_lr: 0.1
lr_policy: "fixed"
display: 1
max_iter: 3
snapshot_prefix: "${PREFIX}/tiny"
solver_mode: GPU
random_seed: 3
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    make_synthetic_voc(str(d / "voc"), num_train=2, num_val=3, size=12, num_classes=3, seed=2,
                       image_format="png")
    (d / "net.prototxt").write_text(NET)
    (d / "solver.prototxt").write_text(SOLVER)
    defines = [f"-define=DATA_ROOT={d / 'voc'}", "-define", "SET=val"]
    torch.manual_seed(0)
    Net(str(d / "net.prototxt"), defines={"DATA_ROOT": str(d / "voc"), "SET": "val"}) \
        .save(str(d / "w.caffemodel"))
    return d, defines


def run(argv):
    """(exit status, stderr, stdout) of deeplab-caffe's main in this process; its signal
    handlers are put back afterwards."""
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGHUP)}
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = caffe.main(argv)
    finally:
        for s, f in old.items():
            signal.signal(s, f)
    return code, err.getvalue(), out.getvalue()


def messages(stderr):
    """The glog lines' messages (after ``] ``), each with its severity letter."""
    return [(l[0], l.split("] ", 1)[1]) for l in stderr.splitlines()
            if re.match(r"[IWEF]\d{4} ", l)]


# -- flags ---------------------------------------------------------------------------------------
def test_gflags_spellings():
    for argv in (["train", "-solver", "s.prototxt"], ["train", "--solver=s.prototxt"],
                 ["train", "--solver", "s.prototxt"], ["-solver=s.prototxt", "train"]):
        words, flags, given = caffe.parse_command_line(argv)
        assert words == ["train"] and flags["solver"] == "s.prototxt" and "solver" in given
    words, flags, given = caffe.parse_command_line(
        ["test", "--gpu=", "-iterations", "7", "--iterations=9", "-level=2", "--stage", "a,b"])
    assert flags["gpu"] == "" and "gpu" in given          # given, and empty
    assert flags["iterations"] == 9 and flags["level"] == 2          # the last one wins
    assert flags["stage"] == "a,b" and caffe.stages_of(flags) == ["a", "b"]
    words, flags, given = caffe.parse_command_line(["time"])
    assert flags["iterations"] == 50 and flags["sigint_effect"] == "stop" and not given


@pytest.mark.parametrize("argv,message", [
    (["train", "--solvr=x"], "ERROR: unknown command line flag 'solvr'"),
    (["train", "--solver"], "ERROR: flag 'solver' is missing its argument"),
    (["test", "--iterations=many"], "ERROR: illegal value 'many' specified for int32 flag "
                                     "'iterations'"),
])
def test_bad_command_line_exits_1(argv, message):
    code, err, out = run(argv)
    assert code == 1 and message in err


def test_usage():
    code, err, out = run([])
    assert code == 0 and "usage:" in err and "device_query" in err       # Caffe returns 0
    code, err, out = run(["train", "test"])
    assert code == 0 and "usage:" in err
    code, err, out = run(["--help"])
    assert code == 1 and "deeplab-caffe <command> <args>" in out         # gflags' exit(1)
    code, err, out = run(["--version"])
    assert code == 0 and out.startswith("deeplab-caffe version ")


@pytest.mark.parametrize("argv,message", [
    (["train"], "Need a solver definition to train."),
    (["train", "-solver", "s", "-snapshot", "a", "-weights", "b"], "but not both"),
    (["test", "-model", "m"], "Need model weights to score."),
    (["time"], "Need a model definition to time."),
    (["brew"], "Unknown action: brew"),
    (["train", "-solver", "missing.prototxt", "--gpu=-1"], "missing.prototxt"),
    (["time", "-model", "m", "-phase", "VAL"], 'phase must be "TRAIN" or "TEST"'),
])
def test_fatal_errors_exit_134(argv, message):
    code, err, out = run(argv)
    assert code == 134
    fatal = [m for s, m in messages(err) if s == "F"]
    assert len(fatal) == 1 and message in fatal[0], err


def test_signal_effect_is_checked(files):
    d, defines = files
    code, err, _ = run(["train", "-solver", str(d / "solver.prototxt"), "--sigint_effect=quit",
                        "--gpu="] + defines)
    assert code == 134 and 'Invalid signal effect "quit"' in err


# -- train ----------------------------------------------------------------------------------------
def test_train_on_cpu_with_empty_gpu(files, tmp_path):
    d, defines = files
    def argv(prefix):
        return ["train", f"--solver={d / 'solver.prototxt'}", "--gpu=",
                f"-define=NET={d / 'net.prototxt'}", f"-define=PREFIX={prefix}", "-define",
                "SET=train_aug", f"-define=DATA_ROOT={d / 'voc'}"]
    code, err, _ = run(argv(tmp_path) + ["-iterations", "2"])
    assert code == 0, err
    lines = [m for _, m in messages(err)]
    assert lines[0] == "Use CPU." and "Starting Optimization" in lines
    assert lines[-1] == "Optimization Done."
    assert any(l.startswith("Iteration 2, loss = ") for l in lines)
    assert (tmp_path / "tiny_iter_2.caffemodel").exists()       # -iterations replaced max_iter 3
    assert not (tmp_path / "tiny_iter_3.caffemodel").exists()
    # -snapshot resumes (to the solver's max_iter 3 now).
    code, err, _ = run(argv(tmp_path) + [f"-snapshot={tmp_path / 'tiny_iter_2.solverstate'}"])
    assert code == 0, err
    assert any(m.startswith("Restoring previous solver status from") for _, m in messages(err))
    assert (tmp_path / "tiny_iter_3.caffemodel").exists()
    # -weights a,b: each file in turn.
    w = str(d / "w.caffemodel")
    code, err, _ = run(argv(tmp_path / "ft") + ["--weights", f"{w},{w}", "-iterations=0"])
    assert code == 0, err
    assert [m for _, m in messages(err)].count(f"Finetuning from {w}") == 2


# -- test -----------------------------------------------------------------------------------------
def test_test_loop_as_caffe(files):
    d, defines = files
    model, w = str(d / "net.prototxt"), str(d / "w.caffemodel")
    code, err, _ = run(["test", "--model", model, "--weights", w, "--gpu=", "-iterations", "3"]
                       + defines)
    assert code == 0, err
    got = [m for s, m in messages(err)]
    # The reference: the same net and weights, three forwards, Caffe's lines built here.
    net = Net(model, weights=w, defines={"DATA_ROOT": str(d / "voc"), "SET": "val"})
    acc, loss = [], []
    for _ in range(3):
        out = net.forward()
        acc.append(float(out["accuracy"]))
        loss.append(float(out["loss"].detach()))
    assert len({round(a, 6) for a in acc} | {round(v, 6) for v in loss}) > 2   # images differ
    want = ["Use CPU.", "Running for 3 iterations."]
    for i in range(3):
        want += [f"Batch {i}, accuracy = {acc[i]:.6g}", f"Batch {i}, loss = {loss[i]:.6g}"]
    # Caffe sums and divides in float.
    mean_loss = np.float32(sum(np.float32(v) for v in loss)) / np.float32(3)
    mean_acc = np.float32(sum(np.float32(v) for v in acc)) / np.float32(3)
    want += [f"Loss: {2 * mean_loss:.6g}", f"accuracy = {mean_acc:.6g}",
             f"loss = {mean_loss:.6g} (* 2 = {2 * mean_loss:.6g} loss)"]
    assert got[-len(want):] == want


def test_test_writes_one_mat_per_image(files, tmp_path):
    d, defines = files
    ids = (d / "voc" / "list" / "val_id.txt").read_text().split()
    mat_net = NET + f"""layer {{ name: "fc8_mat" type: "MatWrite" bottom: "conv1"
  mat_write_param {{ prefix: "{tmp_path}/fc8/" source: "${{DATA_ROOT}}/list/val_id.txt" }} }}
"""
    (tmp_path / "m.prototxt").write_text(mat_net)
    code, err, _ = run(["test", "-model", str(tmp_path / "m.prototxt"), "-weights",
                        str(d / "w.caffemodel"), f"-iterations={len(ids)}"] + defines)
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "fc8")) == sorted(f"{i}_blob_0.mat" for i in ids)


# -- time -----------------------------------------------------------------------------------------
def test_time_lines(files):
    d, defines = files
    code, err, _ = run(["time", "-model", str(d / "net.prototxt"), "-iterations", "2"] + defines)
    assert code == 0, err
    got = [m for _, m in messages(err)]
    assert got[0] == "Use CPU." and got[-1] == "*** Benchmark ends ***"
    assert [l.split(" forward")[0] for l in got if l.startswith("Iteration: ")] == \
        ["Iteration: 1", "Iteration: 2"]
    for layer in ("data", "conv1", "loss"):
        assert any(re.fullmatch(rf" *{layer}\tforward: [\d.e+-]+ ms\.", l) for l in got)
        assert any(re.fullmatch(rf" *{layer}\tbackward: [\d.e+-]+ ms\.", l) for l in got)
    for head in ("Average Forward pass: ", "Average Backward pass: ",
                 "Average Forward-Backward: ", "Total Time: "):
        assert sum(l.startswith(head) for l in got) == 1


def test_level_and_stage_select_layers(tmp_path):
    (tmp_path / "m.prototxt").write_text("""name: "s"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "staged" type: "ReLU" bottom: "x" top: "y" include { stage: "extra" } }
layer { name: "leveled" type: "ReLU" bottom: "x" top: "z" include { min_level: 2 } }
""")

    def layers(*flags):
        code, err, _ = run(["time", f"-model={tmp_path / 'm.prototxt'}", "-iterations=1", *flags])
        assert code == 0, err
        return [m.split("\t")[0].strip() for _, m in messages(err) if "\tforward: " in m]
    assert layers() == ["in"]
    assert layers("-stage", "other,extra") == ["in", "staged"]
    assert layers("--level=2") == ["in", "leveled"]


class SlowBackward(torch.autograd.Function):
    """Identity whose backward sleeps: time's backward must show it, its forward must not."""
    SECONDS = 0.05

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        clock.sleep(SlowBackward.SECONDS)
        return g


@pytest.mark.parametrize("with_loss", [True, False])
def test_time_measures_backward_on_its_own(with_loss):
    loss = ('layer { name: "loss" type: "EuclideanLoss" bottom: "slow" bottom: "target" '
            'top: "loss" }') if with_loss else ""
    net = Net(f"""name: "t"
layer {{ name: "in" type: "Input" top: "data" top: "target"
  input_param {{ shape {{ dim: 1 dim: 2 dim: 4 dim: 4 }}
                 shape {{ dim: 1 dim: 3 dim: 4 dim: 4 }} }} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param {{ num_output: 3 kernel_size: 1 weight_filler {{ type: "gaussian" }} }} }}
layer {{ name: "slow" type: "ReLU" bottom: "conv" top: "slow" }}
{loss}""", phase="TRAIN")
    slow = net.layer("slow")
    plain = slow.forward
    slow.forward = lambda x: tuple(SlowBackward.apply(y) for y in plain(x))
    rows, fwd, bwd, whole = time_layers(net, 2, "cpu")
    by = {r["layer"]: r for r in rows}
    # A net without a loss still runs its backward (zero diffs), layer by layer.
    assert by["slow"]["backward_ms"] >= 1e3 * SlowBackward.SECONDS
    assert by["slow"]["forward_ms"] < 1e3 * SlowBackward.SECONDS
    assert bwd >= 1e3 * SlowBackward.SECONDS > fwd
    assert whole >= fwd + bwd * 0.99


# -- save (DeepLab's verb) ----------------------------------------------------------------------
def test_save_copies_weights_in_the_nets_format(files, tmp_path):
    from deeplab_caffe.io import read_caffemodel
    d, defines = files
    v1 = tmp_path / "v1.prototxt"
    v1.write_text("""name: "v"
input: "data" input_dim: 1 input_dim: 3 input_dim: 12 input_dim: 12
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  convolution_param { num_output: 3 kernel_size: 3 pad: 1 } }
""")
    out = tmp_path / "out.caffemodel"
    code, err, _ = run(["save", f"-model={v1}", f"-weights={d / 'w.caffemodel'}",
                        f"-out_weights={out}"])
    assert code == 0, err
    assert f"Snapshotting to {out}" in err
    saved, source = read_caffemodel(str(out)), read_caffemodel(str(d / "w.caffemodel"))
    assert saved.format == "v1" and source.format == "v2"
    conv = {l.name: l for l in source.layers}["conv1"]
    assert [l.name for l in saved.layers] == ["conv1"]
    for a, b in zip(saved.layers[0].blobs, conv.blobs):
        np.testing.assert_array_equal(np.asarray(a).reshape(np.shape(b)), b)
    code, err, _ = run(["save", f"-model={v1}", f"-weights={d / 'w.caffemodel'}"])
    assert code == 134 and "Give filename where to save" in err


# -- device_query ---------------------------------------------------------------------------------
def test_device_query():
    code, err, _ = run(["device_query", "--gpu="])
    assert code == 0 and [m for _, m in messages(err)] == ["Querying GPUs "]
    if not torch.cuda.is_available():
        code, err, _ = run(["device_query", "-gpu", "0"])
        assert code == 134 and "no CUDA GPU" in err
    else:
        code, err, _ = run(["device_query", "-gpu", "0"])
        assert code == 0 and torch.cuda.get_device_name(0) in err


# -- glog files ------------------------------------------------------------------------------------
def test_glog_files(monkeypatch, tmp_path):
    monkeypatch.setenv("GLOG_log_dir", str(tmp_path))
    code, err, _ = run(["brew"])              # E lines, then an F line
    assert code == 134
    names = sorted(os.listdir(tmp_path))
    for severity in ("INFO", "WARNING", "ERROR", "FATAL"):
        link = tmp_path / f"deeplab-caffe.{severity}"
        assert link.is_symlink()
        target = os.readlink(link)
        assert re.fullmatch(
            rf"deeplab-caffe\.[^/]+\.log\.{severity}\.\d{{8}}-\d{{6}}\.{os.getpid()}", target)
        text = (tmp_path / target).read_text()
        header, body = text.split("msg\n", 1)
        assert header.startswith("Log file created at: ")
        # Each file holds its severity and worse: here E lines, then the F line.
        letters = [l[0] for l in body.splitlines()]
        errors = 1 + len(caffe.COMMANDS)      # "Available caffe actions:", one line each
        assert letters == (["F"] if severity == "FATAL" else ["E"] * errors + ["F"])
    assert len(names) == 8
    # stderr still gets every line (alsologtostderr).
    assert err.count("Available caffe actions") == 1
    monkeypatch.setenv("GLOG_logtostderr", "1")
    other = tmp_path / "none"
    monkeypatch.setenv("GLOG_log_dir", str(other))
    run(["brew"])
    assert not other.exists()


def test_no_glog_files_without_log_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("GLOG_log_dir", raising=False)
    monkeypatch.chdir(tmp_path)
    run(["brew"])
    assert os.listdir(tmp_path) == []


# -- how it is installed ---------------------------------------------------------------------------
def test_console_script_is_declared():
    """setup.py installs `deeplab-caffe` pointing at cli.caffe:main (pip writes the script from
    this entry point; the run_pascal test runs it through a wrapper of the same name)."""
    tree = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
    setup_call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                      and getattr(n.func, "id", None) == "setup")
    kw = {k.arg: ast.literal_eval(k.value) for k in setup_call.keywords
          if k.arg in ("entry_points", "install_requires")}
    assert kw["entry_points"]["console_scripts"] == ["deeplab-caffe = deeplab_caffe.cli.caffe:main"]
    assert "scipy" in kw["install_requires"]
    module, func = "deeplab_caffe.cli.caffe", "main"
    assert getattr(importlib.import_module(module), func) is caffe.main


def test_python_dash_m(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("GLOG_log_dir", None)
    p = subprocess.run([sys.executable, "-m", "deeplab_caffe", "brew"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 134 and "Unknown action: brew" in p.stderr


# -- placeholders: Caffe has none ------------------------------------------------------------------
def test_unfilled_placeholder_in_a_string_stays_literal(files, tmp_path):
    """DeepLab's solver files keep `${MODEL}` in snapshot_prefix (their sed never fills it); the
    caffe binary takes it as text, and so does deeplab-caffe."""
    d, defines = files
    solver = SOLVER.replace('"${PREFIX}/tiny"', '"${PREFIX}/${MODEL}_train"')
    (tmp_path / "solver.prototxt").write_text(solver)
    code, err, _ = run(["train", f"--solver={tmp_path / 'solver.prototxt'}", "--gpu=",
                        "-iterations=1", f"-define=NET={d / 'net.prototxt'}",
                        f"-define=PREFIX={tmp_path}", "-define=SET=train_aug",
                        f"-define=DATA_ROOT={d / 'voc'}"])
    assert code == 0, err
    assert (tmp_path / "${MODEL}_train_iter_1.caffemodel").exists()


def test_caffe_defines_only_in_strings():
    from deeplab_caffe.errors import PrototxtError
    from deeplab_caffe.proto.tokenizer import CaffeDefines, tokenize
    text = 'snapshot_prefix: "a/${MODEL}_${X}" max_iter: ${N}'
    toks = tokenize(text, defines=CaffeDefines(X="x", N="3"))
    assert [t.value for t in toks if t.kind != "eof"][2:] == [b"a/${MODEL}_x", "max_iter", ":", "3"]
    with pytest.raises(PrototxtError, match=r"placeholder '\$\{N\}' is not defined"):
        tokenize(text, defines=CaffeDefines(X="x"))          # outside a string: still an error
    with pytest.raises(PrototxtError, match=r"placeholder '\$\{MODEL\}' is not defined"):
        tokenize(text, defines={"X": "x", "N": "3"})         # the tools' defines: an error
