"""One trainer per snapshot prefix (Caffe has no such guard).

Two trainers writing ``<prefix>_iter_N.*`` at once mix their files: a set can pair one run's
weights with the other's momentum and random streams.  A trainer therefore holds an exclusive
``fcntl.flock`` on ``<prefix>.lock`` while it runs; the kernel drops the lock when the process
dies, even by SIGKILL, so a killed run never blocks the next one.  The file holds the owner's
pid for the error message and is removed when the last holder releases it.

Solvers of one process share the lock (a test, or a resume in the same process, may build a
second solver on the same prefix); the guard is between processes.

Whoever takes the lock owns the prefix, so ``*.tmp<pid>`` files left beside its snapshots by a
killed run (``io._files.atomic_write``'s temporary names) are removed then.
"""
import fcntl
import os

from ..errors import CaffeError
from ..io._files import TEMP_RE

_HELD = {}     # lock file path -> [fd, number of holders in this process]


class PrefixLockedError(CaffeError):
    """Another process is snapshotting to the same snapshot_prefix."""


def _open_locked(path, prefix):
    """A descriptor of ``path`` holding its exclusive lock; raises PrefixLockedError."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise PrefixLockedError(
                f"snapshot_prefix '{prefix}' is in use by another trainer (pid {owner}; {path} "
                "is locked): give this run its own snapshot_prefix") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        # The previous holder removed the file between our open and our lock: lock the new one.
        os.close(fd)


def remove_stale_temp_files(prefix):
    """Remove ``<prefix>_iter_*.tmp<pid>`` files; returns their paths."""
    folder = os.path.dirname(prefix) or "."
    stem = os.path.basename(prefix) + "_iter_"
    mine = f".tmp{os.getpid()}"
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if name.startswith(stem) and TEMP_RE.search(name) and not name.endswith(mine):
            path = os.path.join(folder, name)
            try:
                os.remove(path)
                removed.append(path)
            except OSError:
                pass
    return removed


def acquire(prefix, log=None):
    """Take the lock of ``prefix`` (creating its folder); returns the key for ``release``, or
    None when the lock file cannot be created (a read-only folder: a run that never snapshots
    still works there; its snapshots would fail with their own WriteError)."""
    prefix = os.fspath(prefix)
    path = os.path.realpath(f"{prefix}.lock")
    held = _HELD.get(path)
    if held is not None:
        held[1] += 1
        return path
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        fd = _open_locked(path, prefix)
    except OSError as e:
        if log is not None:
            log.warning("snapshot", f"{path}: cannot create the snapshot prefix lock "
                        f"({e.strerror}): running without it")
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[path] = [fd, 1]
    removed = remove_stale_temp_files(prefix)
    if removed and log is not None:
        log.info("snapshot", f"Removed {len(removed)} temporary file(s) left by a killed run: "
                 f"{', '.join(removed[:3])}{' ...' if len(removed) > 3 else ''}")
    return path


def release(key):
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[key]
        try:
            os.remove(key)     # still holding the lock: a waiting opener sees the inode change
        except OSError:
            pass
        os.close(held[0])
