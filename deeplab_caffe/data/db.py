"""Caffe's key-value databases (util/db_lmdb.cpp, util/db_leveldb.cpp): LMDB through the
``lmdb`` package, LevelDB through ``plyvel``.  Both are optional imports: using a backend whose
package is missing is an error naming the package.

Records are read in key order (both stores sort keys bytewise), and a reader goes round to the
first record after the last one, as Caffe's DataLayer does ("Restarting data prefetching from
start")."""
import os
import threading

from ..errors import CaffeError

BACKENDS = ("LMDB", "LEVELDB")
# db_lmdb.cpp opens with a 1 TB map (a sparse file on Linux; only the written pages count).
LMDB_MAP_SIZE = 1 << 40


def _import(backend):
    name = {"LMDB": "lmdb", "LEVELDB": "plyvel"}[backend]
    try:
        return __import__(name)
    except ImportError:
        raise CaffeError(f"the {backend} backend needs the Python package '{name}' "
                         f"(pip install {name})") from None


# The lmdb package opens an environment once per process; Caffe's layers open a source as often
# as they name it (a TRAIN and a TEST layer reading one database).  Readers share it.
_LMDB_ENVS = {}
_LMDB_LOCK = threading.Lock()


def _open_lmdb(mod, path):
    key = os.path.realpath(path)
    with _LMDB_LOCK:
        entry = _LMDB_ENVS.get(key)
        if entry is None:
            entry = _LMDB_ENVS[key] = [mod.open(path, readonly=True, lock=False,
                                                readahead=False, max_readers=1024), 0]
        entry[1] += 1
        return entry[0]


def _close_lmdb(path):
    key = os.path.realpath(path)
    with _LMDB_LOCK:
        entry = _LMDB_ENVS.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                entry[0].close()
                del _LMDB_ENVS[key]


def _check_backend(backend):
    if backend not in BACKENDS:
        raise CaffeError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


class Reader:
    """Key-ordered, cyclic reading of a database: ``next()`` -> (key bytes, value bytes)."""

    def __init__(self, path, backend="LMDB"):
        _check_backend(backend)
        self.path, self.backend = os.fspath(path), backend
        mod = _import(backend)
        if not os.path.isdir(self.path):
            raise CaffeError(f"data_param.source '{self.path}': no {backend} database there")
        try:
            if backend == "LMDB":
                self._env = _open_lmdb(mod, self.path)
                self._txn = self._env.begin(buffers=False)
                self._cursor = self._txn.cursor()
            else:
                self._env = mod.DB(self.path, create_if_missing=False)
        except Exception as e:  # lmdb.Error / plyvel.Error: the message says what failed
            raise CaffeError(f"data_param.source '{self.path}': cannot open {backend} ({e})") \
                from None
        self._iter = None
        self._restart()
        if self._peeked is None:
            raise CaffeError(f"data_param.source '{self.path}': the {backend} database is empty")

    def _restart(self):
        if self.backend == "LMDB":
            self._iter = iter(self._cursor.iternext()) if self._cursor.first() else iter(())
        else:
            self._iter = self._env.iterator()
        self._peeked = next(self._iter, None)

    def peek(self):
        return self._peeked

    def next(self):
        item = self._peeked
        self._peeked = next(self._iter, None)
        if self._peeked is None:
            self._restart()
        return item

    def __len__(self):
        if self.backend == "LMDB":
            return self._env.stat()["entries"]
        return sum(1 for _ in self._env.iterator(include_value=False))

    def close(self):
        if self._env is None:
            return
        if self.backend == "LMDB":
            self._txn.abort()
            _close_lmdb(self.path)
        else:
            self._env.close()
        self._env = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the modules may be gone already
            pass


class Writer:
    """A new database (Caffe's db::NEW: an existing one is an error), written in batches."""

    def __init__(self, path, backend="LMDB", commit_every=1000):
        _check_backend(backend)
        self.path, self.backend = os.fspath(path), backend
        mod = _import(backend)
        if os.path.exists(self.path):
            raise CaffeError(f"{self.path}: already exists (Caffe's convert tools create a new "
                             "database)")
        if backend == "LMDB":
            os.makedirs(self.path)
            self._env = mod.open(self.path, map_size=LMDB_MAP_SIZE)
        else:
            self._env = mod.DB(self.path, create_if_missing=True, error_if_exists=True)
        self.commit_every = int(commit_every)
        self._pending = []

    def put(self, key, value):
        self._pending.append((key.encode() if isinstance(key, str) else bytes(key),
                              bytes(value)))
        if len(self._pending) >= self.commit_every:
            self.commit()

    def commit(self):
        if self.backend == "LMDB":
            with self._env.begin(write=True) as txn:
                for k, v in self._pending:
                    txn.put(k, v)
        else:
            with self._env.write_batch() as batch:
                for k, v in self._pending:
                    batch.put(k, v)
        self._pending = []

    def close(self):
        self.commit()
        self._env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
