"""Weight files that change underneath a reader, and writes that fail (issue 18)."""
import errno
import os
import subprocess
import sys

import numpy as np
import pytest

import deeplab_caffe as dc
from deeplab_caffe.io import _files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Truncate the file while its bytes are being decoded, then touch the last page: with a memory
# map this is SIGBUS (exit -7); read into memory, it is the bytes read before.
TRUNCATE_DURING_DECODE = r"""
import os, sys
import numpy as np
from deeplab_caffe.io import _files, read_caffemodel, write_caffemodel
from deeplab_caffe.io import caffemodel
path = sys.argv[1]
write_caffemodel(path, [("ip", "InnerProduct", [np.ones((256, 1024), np.float32)])], fsync=False)
real = caffemodel.decode_net
def decode_while_truncated(buf, *a, **k):
    os.truncate(path, 0)
    assert buf[len(buf) - 1] is not None
    return real(buf, *a, **k)
caffemodel.decode_net = decode_while_truncated
m = read_caffemodel(path)
print("read", m.layers[0].blobs[0].shape)
"""


def test_file_truncated_while_read_does_not_kill_the_process(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", TRUNCATE_DURING_DECODE,
                          str(tmp_path / "w.caffemodel")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert "read (256, 1024)" in out.stdout


def test_file_shorter_than_its_size_reads_as_truncated(tmp_path, monkeypatch):
    path = tmp_path / "w.caffemodel"
    dc.io.write_caffemodel(path, [("ip", "InnerProduct", [np.ones((4, 8), np.float32)])])
    real_fstat = os.fstat
    # The size seen before the read is larger than what the read finds (the file shrank).
    monkeypatch.setattr(_files.os, "fstat", lambda fd: os.stat_result(
        real_fstat(fd)[:6] + (real_fstat(fd).st_size + 100,) + real_fstat(fd)[7:]))
    buf = _files.read_bytes(path)
    assert len(buf) == os.path.getsize(path)


def _fill_disk_after(nbytes):
    """An Encoder.write that writes ``nbytes`` and then fails as a full disk does."""
    def write(self, f, msg):
        f.write(b"\0" * nbytes)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return write


def test_disk_full_while_writing_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "w.caffemodel"
    dc.io.write_caffemodel(path, [("ip", "", [np.ones(3, np.float32)])])
    before = path.read_bytes()
    monkeypatch.setattr(dc.io.caffemodel.wire.Encoder, "write", _fill_disk_after(1000))
    with pytest.raises(dc.WriteError, match=r"w\.caffemodel: cannot write: No space left") as e:
        dc.io.write_caffemodel(path, [("ip", "", [np.ones((64, 64), np.float32)])])
    assert e.value.exit_code == dc.errors.EXIT_WRITE_FAILED == 74
    assert os.listdir(tmp_path) == ["w.caffemodel"] and path.read_bytes() == before


def test_permission_denied_is_a_write_error(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    monkeypatch.setattr(_files, "open", denied, raising=False)
    with pytest.raises(dc.WriteError, match="w.caffemodel: cannot write: Permission denied"):
        dc.io.write_caffemodel(tmp_path / "w.caffemodel", [("ip", "", [np.ones(3, np.float32)])])


@pytest.mark.parametrize("file_format", ["mat", "npy"])
def test_feature_write_failure_leaves_no_partial_file(tmp_path, monkeypatch, file_format):
    import scipy.io
    import torch
    from layer_util import build
    layer, _ = build("MatWrite", {"mat_write_param": {"prefix": str(tmp_path) + "/s_"}},
                     [(1, 2)], top=())
    layer.file_format = file_format

    def write_then_fill(f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if file_format == "npy":
        monkeypatch.setattr(np, "save", write_then_fill)
    else:
        monkeypatch.setattr(scipy.io, "savemat", write_then_fill)
    with pytest.raises(dc.WriteError,
                       match=rf"s_iter_0_blob_0\.{file_format}: cannot write: No space"):
        layer(torch.ones(1, 2))
    assert os.listdir(tmp_path) == []
