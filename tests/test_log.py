"""Our training log read by a faithful reimplementation of Caffe's tools/extra/parse_log.py
(its regexes, row logic and extract_seconds' date parsing) and of parse_log.sh's awk fields."""
import datetime
import io
import re

import pytest

import deeplab_caffe as dc
from deeplab_caffe.log import GLog, Progress, fmt
from solver_util import dataset, ls_net

# tools/extra/parse_log.py, verbatim regexes.
regex_iteration = re.compile(r'Iteration (\d+)')
regex_train_output = re.compile(r'Train net output #(\d+): (\S+) = ([\.\deE+-]+)')
regex_test_output = re.compile(r'Test net output #(\d+): (\S+) = ([\.\deE+-]+)')
regex_learning_rate = re.compile(r'lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)')


def extract_datetime_from_line(line, year):
    line = line.strip().split()
    month, day = int(line[0][1:3]), int(line[0][3:5])
    timestamp = line[1]
    pos = timestamp.rfind('.')
    ts = [int(x) for x in timestamp[:pos].split(':')]
    return datetime.datetime(year, month, day, ts[0], ts[1], ts[2], int(timestamp[pos + 1:]))


def get_start_time(lines, year):
    for line in lines:
        line = line.strip()
        if line.find('Solving') != -1:
            return extract_datetime_from_line(line, year)
    return None


def parse_line_for_net_output(regex_obj, row, row_dict_list, line, iteration, seconds, lr):
    output_match = regex_obj.search(line)
    if output_match:
        if not row or row['NumIters'] != iteration:
            if row:
                row_dict_list.append(row)
            row = {'NumIters': iteration, 'Seconds': seconds, 'LearningRate': lr}
        row[output_match.group(2)] = float(output_match.group(3))
    if row and len(row_dict_list) >= 1 and len(row) == len(row_dict_list[0]):
        row_dict_list.append(row)
        row = None
    return row_dict_list, row


def parse_log(lines, year=2026):
    train, test, train_row, test_row = [], [], None, None
    start_time = get_start_time(lines, year)
    assert start_time is not None, "no 'Solving' line"
    iteration, lr = -1, float('NaN')
    for line in lines:
        m = regex_iteration.search(line)
        if m:
            iteration = float(m.group(1))
        if iteration == -1:
            continue
        try:
            time = extract_datetime_from_line(line, year)
        except ValueError:
            continue
        seconds = (time - start_time).total_seconds()
        m = regex_learning_rate.search(line)
        if m:
            lr = float(m.group(1))
        train, train_row = parse_line_for_net_output(regex_train_output, train_row, train, line,
                                                     iteration, seconds, lr)
        test, test_row = parse_line_for_net_output(regex_test_output, test_row, test, line,
                                                   iteration, seconds, lr)
    return train, test


def run_logged(tmp_path):
    (tmp_path / "net.prototxt").write_text(ls_net())
    (tmp_path / "s.prototxt").write_text(
        'net: "net.prototxt"\ntest_iter: 2\ntest_interval: 4\nbase_lr: 0.05\nlr_policy: "step"\n'
        'gamma: 0.5\nstepsize: 4\nmomentum: 0.9\ndisplay: 2\naverage_loss: 2\nmax_iter: 8\n'
        f'snapshot: 4\nsnapshot_prefix: "{tmp_path}/ls"\nsolver_mode: CPU\nrandom_seed: 3\n')
    buf = io.StringIO()
    s = dc.SGDSolver(str(tmp_path / "s.prototxt"), log=GLog(stream=buf))
    for net in [s.net] + s.test_nets:
        net.layer("data").set_input_arrays(*dataset())
    s.solve()
    return buf.getvalue().splitlines(), s


def test_glog_prefix_and_wording(tmp_path):
    lines, s = run_logged(tmp_path)
    prefix = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [\w.]+:\d+\] ")
    assert all(prefix.match(l) for l in lines), [l for l in lines if not prefix.match(l)]
    text = "\n".join(lines)
    for want in ["] Solving LeastSquares", "] Iteration 0, Testing net (#0)",
                 "] Iteration 2, loss = ", "] Iteration 2, lr = 0.05", "] Iteration 4, lr = 0.025",
                 "]     Train net output #0: loss = ", "]     Test net output #0: loss = ",
                 " (* 1 = ", f"] Snapshotting to binary proto file {tmp_path}/ls_iter_4.caffemodel",
                 "] Snapshotting solver state to binary proto file "
                 f"{tmp_path}/ls_iter_8.solverstate",
                 "] Iteration 8, loss = ", "] Optimization Done."]:
        assert want in text, want
    # parse_log.sh: awk field 9 of ', loss = ' and ', lr = ' lines is the number.
    for l in lines:
        if ", loss = " in l or ", lr = " in l:
            float(l.split()[8])


def test_parse_log_reads_it(tmp_path):
    lines, s = run_logged(tmp_path)
    train, test = parse_log(lines)
    assert [r["NumIters"] for r in train] == [0, 2, 4, 6]
    # As with Caffe's logs, a train row takes the lr printed before it (the lr line follows
    # the outputs), and the first row's is NaN.
    assert [r["LearningRate"] for r in train][1:] == [0.05, 0.05, 0.025]
    assert all(set(r) == {"NumIters", "Seconds", "LearningRate", "loss"} for r in train)
    assert [r["NumIters"] for r in test] == [0, 4, 8]
    final = s.test(0)     # two batches cover all 8 samples: the same mean again
    assert test[-1]["loss"] == pytest.approx(final["loss"], rel=1e-5)


def test_fmt_like_ostream():
    assert [fmt(v) for v in (0.001, 1e-05, 0.5, 123456789.0, 2, float("nan"))] == \
        ["0.001", "1e-05", "0.5", "1.23457e+08", "2", "nan"]


def test_progress_only_on_tty():
    buf = io.StringIO()
    p = Progress(100, "Testing net (#0)", stream=buf)
    p.update(50)
    p.close()
    assert buf.getvalue() == ""

    class Tty(io.StringIO):
        def isatty(self):
            return True
    t = Tty()
    p = Progress(100, "Testing", stream=t)
    p.update(50)
    assert "50/100" in t.getvalue()


def test_read_log_and_plot(tmp_path):
    from PIL import Image

    from deeplab_caffe.cli import plot_log
    lines, s = run_logged(tmp_path)
    data = dc.log.read_log(lines)
    assert [i for i, _ in data["loss"]] == [0, 2, 4, 6, 8]
    assert data["lr"] == [(0, 0.05), (2, 0.05), (4, 0.025), (6, 0.025)]
    assert [i for i, _ in data["test"]["loss"]] == [0, 4, 8]
    log = tmp_path / "train.log"
    log.write_text("\n".join(lines) + "\n")
    assert plot_log.main([str(log), "--backend", "pil", "--width", "600"]) == 0
    img = Image.open(tmp_path / "train.png")
    assert img.size == (600, 780)
    colours = {c for _, c in img.convert("RGB").getcolors(1 << 20)}
    assert (31, 119, 180) in colours and (255, 127, 14) in colours   # lines were drawn
    (tmp_path / "empty.log").write_text("nothing\n")
    assert plot_log.main([str(tmp_path / "empty.log")]) == 2
