"""Blobs as MATLAB files, the way DeepLab's Caffe writes and reads them (Blob::ToMat and
Blob::FromMat, built on matio), through scipy.io.

ToMat writes a level-5 (v5) MAT file, uncompressed, holding one variable ``data`` of class
single with dims [W, H, C, N]: Caffe's N x C x H x W memory taken column-major, so that in
MATLAB ``data(w+1, h+1, c+1, n+1)`` is ``blob[n, c, h, w]``.  A blob with fewer than 4 axes is
written through Caffe's legacy num/channels/height/width accessors, which give 1 for the missing
trailing axes.  FromMat reads ``data`` back: class single only, at most 4 dims, missing trailing
dims taken as 1 (MATLAB drops trailing singleton dims when it saves).

The feature files of DeepLab's test phase are named ``<prefix><name>_blob_<i>.mat``, ``name``
being a line of the layer's ``source`` list (its first word, less ``strip`` trailing
characters) or ``iter_<k>`` without a list; MAT_WRITE writes and MAT_READ reads those names.
"""
import numpy as np

from ..errors import CaffeError
from ._files import atomic_write

VARIABLE = "data"     # the variable name ToMat writes and FromMat reads


def feature_file(prefix, name, index, ext=".mat"):
    """``<prefix><name>_blob_<index><ext>``, DeepLab's name for bottom/top ``index``."""
    return f"{prefix}{name}_blob_{index}{ext}"


def source_names(source, strip=0):
    """The names of a MAT_WRITE / MAT_READ ``source`` list: the first word of each non-blank
    line less ``strip`` trailing characters (a CaffeError names the file and line)."""
    try:
        with open(source) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CaffeError(f"cannot read source '{source}': {e.strerror}") from None
    names = []
    for n, line in enumerate(lines, 1):
        words = line.split()
        if not words:
            continue
        if len(words[0]) <= strip:
            raise CaffeError(f"source '{source}' line {n}: strip {strip} removes all of "
                             f"'{words[0]}'")
        names.append(words[0][:len(words[0]) - strip])
    return names


def to_mat_array(blob):
    """The [W, H, C, N] float32 array ToMat stores for an N x C x H x W blob (array/tensor)."""
    arr = np.asarray(blob.detach().cpu() if hasattr(blob, "detach") else blob, dtype=np.float32)
    if arr.ndim > 4:
        raise CaffeError(f"a MAT file holds blobs of at most 4 axes, got shape {arr.shape}")
    arr = arr.reshape(arr.shape + (1,) * (4 - arr.ndim))
    return np.asfortranarray(arr.transpose(3, 2, 1, 0))


def write_blob_mat(path, blob):
    """Write ``blob`` to ``path`` as Blob::ToMat(path, false) does."""
    from scipy.io import savemat
    # Atomic: a full disk leaves no half file, and the WriteError names the file.
    with atomic_write(path, fsync=False) as f:
        savemat(f, {VARIABLE: to_mat_array(blob)}, format="5", do_compression=False,
                oned_as="column")


def read_blob_mat(path):
    """Blob::FromMat: the N x C x H x W float32 array stored in ``path``'s ``data``."""
    from scipy.io import loadmat
    try:
        content = loadmat(path, variable_names=[VARIABLE], squeeze_me=False, mat_dtype=False)
    except (OSError, ValueError, TypeError) as e:
        raise CaffeError(f"error opening MAT file {path}: {e}") from None
    if VARIABLE not in content:
        raise CaffeError(f"field '{VARIABLE}' not present in MAT file {path}")
    arr = content[VARIABLE]
    if arr.dtype != np.float32:
        raise CaffeError(f"field '{VARIABLE}' must be of class single in MAT file {path}, "
                         f"got {arr.dtype}")
    if arr.ndim > 4:
        raise CaffeError(f"field '{VARIABLE}' cannot have ndims > 4 in MAT file {path}, got "
                         f"{arr.ndim}")
    arr = arr.reshape(arr.shape + (1,) * (4 - arr.ndim), order="F")
    return np.ascontiguousarray(arr.transpose(3, 2, 1, 0))
