"""glog-style log lines, so that Caffe's tools/extra/parse_log.py and parse_log.sh read our logs.

Every line carries glog's prefix: severity letter, MMDD, HH:MM:SS.ffffff, the thread id (width
5, as glog pads it) and ``file:line]``, e.g.::

    I1126 06:35:12.123456  1234 solver.cpp:218] Iteration 20, loss = 0.5

The file:line tags name the Caffe source line that prints the same message, so a user grepping
for ``solver.cpp`` finds what they expect.  Numbers are printed like C++ ostreams (six
significant digits, ``%g``).
"""
import datetime
import getpass
import math
import os
import re
import socket
import sys
import threading
import time

# Where BVLC Caffe prints each message (solver.cpp / sgd_solver.cpp at 9b89154).
WHERE = {
    "init": "solver.cpp:45", "net": "solver.cpp:102", "test_net": "solver.cpp:190",
    "solving": "solver.cpp:289", "policy": "solver.cpp:290", "restore": "solver.cpp:294",
    "loss": "solver.cpp:218", "train_output": "solver.cpp:237", "lr": "sgd_solver.cpp:105",
    "testing": "solver.cpp:330", "test_loss": "solver.cpp:396", "test_output": "solver.cpp:414",
    "snapshot": "solver.cpp:464", "state": "sgd_solver.cpp:273", "done": "solver.cpp:326",
    "stopped": "solver.cpp:309", "clip": "sgd_solver.cpp:138", "multistep": "sgd_solver.cpp:46",
    "signal": "solver.cpp:257", "diverged": "solver.cpp:222", "copy": "caffe.cpp:247",
}


def fmt(x):
    """A number as C++'s ``ostream << float`` prints it (precision 6, %g)."""
    if isinstance(x, int):
        return str(x)
    x = float(x)
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return f"{x:.6g}"


def glog_prefix(severity="I", where="solver.cpp:0", now=None):
    now = now or datetime.datetime.now()
    tid = threading.get_native_id() if hasattr(threading, "get_native_id") else os.getpid()
    return f"{severity}{now:%m%d %H:%M:%S}.{now.microsecond:06d} {tid:5d} {where}] "


SEVERITIES = ("INFO", "WARNING", "ERROR", "FATAL")


class GlogFiles:
    """glog's log files in ``log_dir``, as Caffe's binaries leave them when GLOG_log_dir is set:
    ``<program>.<host>.<user>.log.<SEVERITY>.<YYYYmmdd-HHMMSS>.<pid>``, one per severity, made
    at the first line of that severity or worse (the INFO file holds every line, the WARNING
    file the warnings and worse ...), each behind a ``<program>.<SEVERITY>`` symlink."""

    def __init__(self, log_dir, program):
        self.log_dir, self.program = log_dir, program
        self.files = {}
        self.paths = {}

    def _open(self, severity):
        now = datetime.datetime.now()
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "invalid-user"
        name = (f"{self.program}.{socket.gethostname() or '(unknown)'}.{user}.log.{severity}."
                f"{now:%Y%m%d-%H%M%S}.{os.getpid()}")
        path = os.path.join(self.log_dir, name)
        os.makedirs(self.log_dir, exist_ok=True)
        f = open(path, "a", encoding="utf-8")
        f.write(f"Log file created at: {now:%Y/%m/%d %H:%M:%S}\n"
                f"Running on machine: {socket.gethostname()}\n"
                "Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg\n")
        link = os.path.join(self.log_dir, f"{self.program}.{severity}")
        try:
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(name, link)
        except OSError:
            pass    # glog too carries on without its symlink
        self.files[severity], self.paths[severity] = f, path
        return f

    def write(self, letter, line):
        level = "IWEF".index(letter)
        for severity in SEVERITIES[:level + 1]:
            f = self.files.get(severity) or self._open(severity)
            f.write(line)
            f.flush()

    def close(self):
        for f in self.files.values():
            f.close()
        self.files = {}


_FILES = None      # the process's GlogFiles, set by init_logging (glog's InitGoogleLogging)


def init_logging(program, environ=None):
    """glog's InitGoogleLogging for a command-line program: every GLog line of this process also
    goes to glog-named files in $GLOG_log_dir when that is set (and $GLOG_logtostderr is not).
    Returns the GlogFiles, or None when there are no files."""
    global _FILES
    env = os.environ if environ is None else environ
    shutdown_logging()
    log_dir = env.get("GLOG_log_dir", "")
    if log_dir and env.get("GLOG_logtostderr", "0").lower() not in ("1", "true", "yes"):
        _FILES = GlogFiles(log_dir, program)
    return _FILES


def shutdown_logging():
    global _FILES
    if _FILES is not None:
        _FILES.close()
    _FILES = None


class GLog:
    """Writes glog lines to ``stream`` (stderr by default, like Caffe with GLOG_logtostderr) and
    optionally appends them to ``path``; once init_logging has run, to the glog files too.
    ``enabled`` False drops everything (ranks > 0)."""

    def __init__(self, stream=None, path=None, enabled=True):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.file = open(path, "a", encoding="utf-8") if (path and enabled) else None

    def _emit(self, severity, key, message):
        self._write(severity, glog_prefix(severity, WHERE.get(key, key)) + message + "\n")

    def info_lines(self, key, messages):
        """Many INFO lines from one place at once, under one time stamp: Caffe's test logs
        every element of every output blob (a 513 x 513 label blob is 263169 lines a batch),
        and a prefix per line would cost more than the net."""
        prefix = glog_prefix("I", WHERE.get(key, key))
        self._write("I", "".join(prefix + m + "\n" for m in messages))

    def _write(self, severity, line):
        if not self.enabled or not line:
            return
        self.stream.write(line)
        self.stream.flush()
        if self.file is not None:
            self.file.write(line)
            self.file.flush()
        if _FILES is not None:
            _FILES.write(severity, line)

    def info(self, key, message):
        self._emit("I", key, message)

    def warning(self, key, message):
        self._emit("W", key, message)

    def error(self, key, message):
        self._emit("E", key, message)

    def fatal(self, key, message):
        """The line of a LOG(FATAL) / failed CHECK; the caller then exits (Caffe aborts)."""
        self._emit("F", key, message)

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


class Progress:
    """A one-line progress bar on stderr for long test passes; silent unless stderr is a tty
    (so logs piped through ``tee`` stay clean for parse_log.py)."""

    def __init__(self, total, label, stream=None, enabled=True):
        self.stream = stream if stream is not None else sys.stderr
        self.total, self.label = total, label
        self.on = enabled and total >= 10 and getattr(self.stream, "isatty", lambda: False)()
        self.step = max(1, total // 100)

    def update(self, done):
        if self.on and (done % self.step == 0 or done == self.total):
            width = 30
            filled = width * done // self.total
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                              f"{done}/{self.total}")
            self.stream.flush()

    def close(self):
        if self.on:
            self.stream.write("\r" + " " * (len(self.label) + 50) + "\r")
            self.stream.flush()


class RateProgress:
    """A one-line progress bar with images/s and the time left, on stderr (silent when
    ``enabled`` is False), for the evaluation tools.  Unlike Progress it is shown on any
    stream: the tools write their results to stdout, so stderr holds only this bar."""

    def __init__(self, total, label="test", enabled=True, stream=None, width=30):
        self.total, self.label, self.enabled = int(total), label, enabled
        self._planned = self.total
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0

    @property
    def rate(self):
        dt = time.perf_counter() - self.start
        return self.done / dt if dt > 0 else float("nan")

    def update(self, n=1, extra=""):
        self.done += n
        self.total = max(self.total, self.done)
        now = time.perf_counter()
        if not self.enabled or (now - self._last < 0.2 and self.done != self._planned):
            return
        self._last = now
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        rate = self.rate
        eta = (self.total - self.done) / rate if rate and rate == rate and rate > 0 else math.nan
        eta_s = f" eta {eta:5.0f}s" if eta == eta else ""
        self.stream.write(f"\r{self.label} {self.done:>6}/{self.total} "
                          f"[{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{rate:6.2f} img/s{eta_s} {extra}")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


_ITER = re.compile(r"Iteration (\d+)")
_LOSS = re.compile(r"Iteration (\d+), loss = ([-+.\deEnaif]+)")
_LR = re.compile(r"Iteration (\d+), lr = ([-+.\deE]+)")
_OUT = re.compile(r"(Train|Test) net output #(\d+): (\S+) = ([-+.\deEnaif]+)")


def read_log(lines):
    """The numbers of a Caffe/our training log: {"loss": [(iter, smoothed loss)], "lr": [(iter,
    lr)], "train": {name: [(iter, v)]}, "test": {name: [(iter, v)]}}.  Outputs with several
    elements keep the last one per iteration (as parse_log.py's rows do)."""
    out = {"loss": [], "lr": [], "train": {}, "test": {}}
    it = None
    for line in lines:
        m = _ITER.search(line)
        if m:
            it = int(m.group(1))
        m = _LOSS.search(line)
        if m:
            out["loss"].append((int(m.group(1)), float(m.group(2))))
            continue
        m = _LR.search(line)
        if m:
            out["lr"].append((int(m.group(1)), float(m.group(2))))
            continue
        m = _OUT.search(line)
        if m and it is not None:
            series = out[m.group(1).lower()].setdefault(m.group(3), [])
            if series and series[-1][0] == it:
                series.pop()
            series.append((it, float(m.group(4))))
    return out
