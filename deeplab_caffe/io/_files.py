"""File plumbing shared by the readers and writers: a read-only mapping of the input (no copy of
the whole file; blob arrays are copied out of it once) and atomic writes (a crash never leaves a
half-written snapshot under the final name)."""
import contextlib
import mmap
import os

from ..errors import CaffeError, WireError


@contextlib.contextmanager
def mapped(path):
    """A memoryview of the file's bytes, valid inside the ``with``."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CaffeError(f"{path}: cannot open: {e.strerror}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            yield memoryview(b"")
            return
        if hasattr(mmap, "MAP_POPULATE"):
            # Linux: fault the whole file in at once; the blob copies then run at memcpy speed.
            mm = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE,
                           prot=mmap.PROT_READ)
        else:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        view = memoryview(mm)
        try:
            yield view
        finally:
            try:
                view.release()
                mm.close()
            except BufferError:
                pass  # a view still lives (an exception's traceback): the GC unmaps it later


def with_file(err, path):
    """The WireError ``err`` again, now naming the file."""
    new = WireError(err.reason, err.offset, str(path))
    new.field_path = getattr(err, "field_path", None)
    return new


def decode_file(path, decode):
    """``decode(buf)`` over the file's mapped bytes; its WireError or CaffeError names the file.

    The error is raised once the mapping is closed: an exception raised inside the ``with`` keeps
    a view of the mapping alive in its traceback.  ``decode`` must copy what it keeps."""
    path = os.fspath(path)
    with mapped(path) as buf:
        try:
            return decode(buf)
        except WireError as e:
            err = with_file(e, path)
        except CaffeError as e:
            err = e if str(e).startswith(path) else CaffeError(f"{path}: {e}")
    raise err


@contextlib.contextmanager
def atomic_write(path, fsync=True, mode="wb"):
    """Open ``path.tmp<pid>`` for binary writing (``mode`` "w+b" for a writer that reads back,
    as HDF5 does); on success it replaces ``path``."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        f = open(tmp, mode)
    except OSError as e:
        raise CaffeError(f"{path}: cannot write: {e.strerror}") from None
    try:
        with f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
