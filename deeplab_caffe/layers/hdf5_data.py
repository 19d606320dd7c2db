"""HDF5Data and HDF5Output (BVLC's hdf5_data_layer.cpp, hdf5_output_layer.cpp), through h5py
(an optional import: using these layers without it is an error naming the package).

HDF5Data: hdf5_data_param.source is a text file listing .h5 files (whitespace-separated, paths
as written, relative to the working directory).  Each top reads the dataset named like the top,
as float32; all tops of a file have the same number of rows (axis 0).  Batches run across rows
and files, going round after the last file.  shuffle shuffles the file order (at setup and at
every wrap) and the rows (whenever a file is loaded or its rows run out).  transform_param is
refused: HDF5 data is generic.  Tops: (batch_size,) + the datasets' other axes.

HDF5Output: writes its two bottoms as the datasets ``data`` and ``label`` of
hdf5_output_param.file_name (created at setup).  Caffe writes them once per forward and fails
at the second (the dataset exists); here each forward replaces them.
"""
import numpy as np
import torch

from ..errors import CaffeError
from .base import Layer, register
from .base_data import DataLayer


def import_h5py(what):
    try:
        import h5py
    except ImportError:
        raise CaffeError(f"{what} needs the Python package 'h5py' (pip install h5py)") from None
    return h5py


def read_file_list(source):
    try:
        with open(source, "r", encoding="utf-8") as f:
            names = f.read().split()
    except OSError as e:
        raise CaffeError(f"hdf5_data_param.source '{source}': cannot read ({e.strerror})") \
            from None
    if not names:
        raise CaffeError(f"hdf5_data_param.source '{source}': must list at least 1 HDF5 file")
    return names


@register("HDF5Data")
class HDF5DataLayer(DataLayer):
    exact_num_bottom = 0
    min_num_top = 1

    def layer_setup(self, bottom_shapes):
        if self.spec.message.has("transform_param"):
            raise self.error("HDF5Data does not transform data: remove transform_param")
        p = self.param("hdf5_data_param")
        self.batch_size = int(p.get("batch_size", 0))
        if self.batch_size <= 0:
            raise self.error(f"hdf5_data_param.batch_size must be positive, got "
                             f"{self.batch_size}")
        self.shuffle = bool(p.get("shuffle", False))
        self.seed = getattr(self, "seed", None)
        if self.seed is None:
            self.seed = int(torch.randint(0, 2 ** 62, (), device="cpu").item())
        self.rng = np.random.default_rng(self.seed)
        try:
            self.h5py = import_h5py("HDF5Data")
            self.files = read_file_list(p.get("source", ""))
            self.file_order = np.arange(len(self.files))
            if self.shuffle:
                self.rng.shuffle(self.file_order)
            self.current_file = 0
            self._load(self.files[self.file_order[0]])
        except CaffeError as e:
            raise self.error(str(e)) from None
        return [(self.batch_size,) + a.shape[1:] for a in self.arrays]

    def _load(self, path):
        try:
            f = self.h5py.File(path, "r")
        except OSError as e:
            raise CaffeError(f"failed opening HDF5 file {path} ({e})") from None
        with f:
            arrays = []
            for name in self.spec.top:
                if name not in f:
                    raise CaffeError(f"HDF5 file {path} has no dataset '{name}' (one per top)")
                a = np.asarray(f[name], dtype=np.float32)
                if a.ndim < 1:
                    raise CaffeError(f"HDF5 file {path}: dataset '{name}' must have at least 1 "
                                     "axis")
                arrays.append(a)
        num = arrays[0].shape[0]
        for name, a in zip(self.spec.top, arrays):
            if a.shape[0] != num:
                raise CaffeError(f"HDF5 file {path}: dataset '{name}' has {a.shape[0]} rows, "
                                 f"'{self.spec.top[0]}' has {num}")
        self.arrays = arrays
        self.rows = np.arange(num)
        if self.shuffle:
            self.rng.shuffle(self.rows)
        self.current_row = 0

    def _next(self):
        self.current_row += 1
        if self.current_row == len(self.rows):
            if len(self.files) > 1:
                self.current_file += 1
                if self.current_file == len(self.files):
                    self.current_file = 0
                    if self.shuffle:
                        self.rng.shuffle(self.file_order)
                self._load(self.files[self.file_order[self.current_file]])
            self.current_row = 0
            if self.shuffle:
                self.rng.shuffle(self.rows)

    def forward(self):
        tops = [np.empty((self.batch_size,) + a.shape[1:], np.float32) for a in self.arrays]
        try:
            for i in range(self.batch_size):
                for t, a in zip(tops, self.arrays):
                    if a.shape[1:] != t.shape[1:]:
                        raise CaffeError(f"a later HDF5 file's rows are {a.shape[1:]}, the "
                                         f"first file's {t.shape[1:]}")
                    t[i] = a[self.rows[self.current_row]]
                self._next()
        except CaffeError as e:
            raise self.error(str(e)) from None
        return tuple(torch.from_numpy(t).to(self.device) for t in tops)


@register("HDF5Output")
class HDF5OutputLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 0

    def layer_setup(self, bottom_shapes):
        self.file_name = self.param("hdf5_output_param").get("file_name")
        if not self.file_name:
            raise self.error("hdf5_output_param.file_name is not set")
        try:
            h5py = import_h5py("HDF5Output")
            h5py.File(self.file_name, "w").close()
        except (OSError, CaffeError) as e:
            raise self.error(f"cannot create HDF5 file {self.file_name} ({e})") from None
        self.h5py = h5py
        return []

    def forward(self, data, label):
        if data.shape[0] != label.shape[0]:
            raise self.error(f"data has {data.shape[0]} rows, label {label.shape[0]}")
        with self.h5py.File(self.file_name, "w") as f:
            f.create_dataset("data", data=data.detach().float().cpu().numpy())
            f.create_dataset("label", data=label.detach().float().cpu().numpy())
        return ()
