"""What our command-line entry points set in the environment before torch loads.

torch's OpenMP runtime (libgomp) reads its settings once, when ``import torch`` loads it: a
variable set later is ignored.  Every command of ours (``deeplab-caffe``, ``python -m
deeplab_caffe[.cli.X|.bench.X]``, ``tools/*.py``) imports this package, whose ``__init__`` runs
``configure()`` before its ``import torch``; a program of the user's that imports
deeplab_caffe keeps OpenMP's and MKL's own defaults.  A variable the user set is never changed.

- OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning.  With two busy
  processes on a 2-core machine, 60 iterations of the demo net took 5.2x their quiet time with
  libgomp's default spin, 2.6x with passive waits (issue 15).  GOMP_SPINCOUNT, when set, is the
  user's choice of spin and is left alone too.
- OMP_NUM_THREADS: the cores other processes leave free now (at least one), from the tasks
  runnable in /proc/loadavg, sampled a few times at start.  A barrier waits for its slowest
  thread, and on a core shared with another busy process each of ours is descheduled half the
  time: one thread then beats two.  Chosen once, at start (torch's pool is made once).
- MKL_CBWR=AUTO,STRICT: MKL's strict conditional numerical reproducibility, under which its
  gemm gives the same bits whatever the thread count (on AVX2 / AVX-512 machines).  With the
  Caffe convolution engine (im2col + gemm, bitwise the same at any thread count) training then
  gives the same weights at 1, 2 or 4 threads, so choosing the count from the load costs no
  reproducibility (prototxt/demo uses that engine; oneDNN's convolution backward does not keep
  its bits across thread counts).
"""
import os
import statistics
import sys
import time

# Where ``configure`` put its choices ({} until it ran, or when this process is not ours).
CHOSEN = {}
LOAD_SAMPLES = 5
LOAD_SAMPLE_GAP_S = 0.01


def entry_point(orig_argv):
    """The command this interpreter was started with, when it is one of ours: "-m MODULE" or
    the script's path; None otherwise (``python -c``, pytest, a user's own script)."""
    args = list(orig_argv[1:])
    while args:
        a = args.pop(0)
        if a == "-m":
            module = args[0] if args else ""
            ours = module == "deeplab_caffe" or module.startswith(
                ("deeplab_caffe.cli.", "deeplab_caffe.bench."))
            return f"-m {module}" if ours else None
        if a == "-c" or a == "-":
            return None
        if a in ("-W", "-X", "--check-hash-based-pycs"):    # options that take a value
            args = args[1:]
            continue
        if a.startswith("-"):
            continue
        script = os.path.realpath(a)
        tools = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))),
                             "tools")
        if os.path.basename(script) == "deeplab-caffe" or os.path.dirname(script) == tools:
            return a
        return None
    return None


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def running_tasks(path="/proc/loadavg"):
    """The tasks runnable now (this process included), or None where the OS does not say."""
    try:
        with open(path) as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def free_cores(cores, samples):
    """Cores left by other processes: ``samples`` are runnable-task counts taken while this
    process had one thread running; their median (one sample can catch a dip) less ours."""
    samples = [s for s in samples if s is not None]
    if not samples:
        return cores
    others = max(0, round(statistics.median(samples)) - 1)
    return max(1, min(cores, cores - others))


def sample_running(count=LOAD_SAMPLES, gap=LOAD_SAMPLE_GAP_S):
    out = []
    for i in range(count):
        if i:
            time.sleep(gap)
        out.append(running_tasks())
    return out


def choices(environ, cores, samples):
    """The variables to set: {name: value} for those the user left unset."""
    out = {}
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        out["OMP_WAIT_POLICY"] = "PASSIVE"
    if "OMP_NUM_THREADS" not in environ:
        out["OMP_NUM_THREADS"] = str(free_cores(cores, samples))
    if "MKL_CBWR" not in environ:
        out["MKL_CBWR"] = "AUTO,STRICT"
    return out


def configure(environ=None, orig_argv=None):
    """Sets the variables for one of our commands, before torch is imported; a no-op in any
    other process, or once torch is loaded (its settings are then fixed).  Returns what it set."""
    environ = os.environ if environ is None else environ
    orig_argv = getattr(sys, "orig_argv", sys.argv) if orig_argv is None else orig_argv
    if "torch" in sys.modules or entry_point(orig_argv) is None:
        return {}
    sampled = [] if "OMP_NUM_THREADS" in environ else sample_running()
    chosen = choices(environ, usable_cores(), sampled)
    environ.update(chosen)
    CHOSEN.update(chosen)
    return chosen
