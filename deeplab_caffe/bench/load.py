"""Background load for the benchmarks: K busy processes (one pure-Python spin loop each, as an
ordinary CPU-bound job on a shared machine), started before the timed runs and stopped after."""
import contextlib
import os
import subprocess
import sys

# Each stops by itself when its parent is gone (a benchmark killed before it could stop them).
# The parent's pid comes from the parent: read with getppid() at start-up it is already init's
# when the parent was killed while the child was still starting (seen under load).
SPIN = ("import os, sys\nparent = int(sys.argv[1])\nwhile os.getppid() == parent:\n"
        "    for _ in range(1000000):\n        pass\n")


@contextlib.contextmanager
def busy_processes(count):
    """Runs ``count`` spinning processes for the duration of the block (none for 0)."""
    if count < 0:
        raise ValueError(f"busy process count must be >= 0, got {count}")
    procs = [subprocess.Popen([sys.executable, "-c", SPIN, str(os.getpid())],
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(count)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def load_average():
    """The machine's 1-minute load average, or None where the OS does not report one."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None
