"""File plumbing shared by the readers and writers: the input read into memory in one pass (blob
arrays are then copied out of it once) and atomic writes (a crash never leaves a half-written
snapshot under the final name)."""
import contextlib
import os
import re

from ..errors import CaffeError, WireError, WriteError


def read_bytes(path):
    """The file's bytes, read into memory in one pass.

    Not a memory map: a mapped file truncated or rewritten in place while it is decoded (``cp
    new old``, rsync --inplace, another trainer snapshotting) kills the process with SIGBUS.
    A file that shrinks under the read comes back short and decodes as truncated."""
    try:
        f = open(path, "rb", buffering=0)
    except (OSError, ValueError) as e:    # ValueError: a NUL in the path
        shown = repr(path) if "\0" in path else path
        raise CaffeError(f"{shown}: cannot open: {getattr(e, 'strerror', None) or e}") from None
    with f:
        try:
            size = os.fstat(f.fileno()).st_size
            buf = bytearray(size)
            view = memoryview(buf)
            got = 0
            while got < size:
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
        except OSError as e:
            raise CaffeError(f"{path}: cannot read: {e.strerror}") from None
    return view[:got]


def with_file(err, path):
    """The WireError ``err`` again, now naming the file."""
    new = WireError(err.reason, err.offset, str(path))
    new.field_path = getattr(err, "field_path", None)
    return new


def decode_file(path, decode):
    """``decode(buf)`` over the file's bytes (a private copy: ``decode`` may keep views of
    it); its WireError or CaffeError names the file."""
    path = os.fspath(path)
    buf = read_bytes(path)
    try:
        return decode(buf)
    except WireError as e:
        err = with_file(e, path)
    except CaffeError as e:
        err = e if str(e).startswith(path) else CaffeError(f"{path}: {e}")
    raise err


def temp_name(path):
    """Where ``atomic_write`` writes ``path`` first (``stale_temp_files`` finds them again)."""
    return f"{path}.tmp{os.getpid()}"


TEMP_RE = re.compile(r"\.tmp[0-9]+\Z")


@contextlib.contextmanager
def atomic_write(path, fsync=True, mode="wb"):
    """Open ``path.tmp<pid>`` for binary writing (``mode`` "w+b" for a writer that reads back,
    as HDF5 does); on success it replaces ``path``.

    Any OSError on the way (disk full, permission, I/O error) removes the temporary file and
    becomes one WriteError naming ``path``; ``path`` itself is untouched."""
    path = os.fspath(path)
    tmp = temp_name(path)
    try:
        f = open(tmp, mode)
    except OSError as e:
        raise WriteError(f"{path}: cannot write: {e.strerror}", path, e.strerror) from None
    try:
        with f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError):
            reason = e.strerror or str(e)
            raise WriteError(f"{path}: cannot write: {reason}", path, reason) from None
        raise
