"""Weight files of any format, chosen for the caller: a .caffemodel (``caffemodel.py``), a Caffe
HDF5 .caffemodel.h5 (``hdf5.py``) or a .pt state dict (``state_dict.py``).  Reading decides by
content (as Caffe's CopyTrainedLayersFrom, by H5Fis_hdf5), writing by ``format`` or the file
name."""
import os

from .caffemodel import read_caffemodel, write_caffemodel
from .hdf5 import is_hdf5, read_caffemodel_h5, write_caffemodel_h5
from .state_dict import PT_SUFFIXES, is_pt, read_pt, save_pt


def read_weights(path, schema="auto"):
    """A CaffeModel from a .caffemodel, a .caffemodel.h5 (``.format == "hdf5"``) or a .pt state
    dict (``.format == "pt"``); the last two carry no layer types ("")."""
    if is_pt(path):
        return read_pt(path)
    if is_hdf5(path):
        return read_caffemodel_h5(path)
    return read_caffemodel(path, schema)


def write_weights(path, layers, format="v2", name=None):
    """Write ``layers`` as a .pt state dict when ``path`` ends in .pt/.pth; as Caffe's HDF5
    layout when ``format`` is "hdf5" or ``path`` ends in .h5 (a blob None there is one the layer
    does not own); else as a .caffemodel in ``format`` ("v2" or "v1").  Returns what the writer
    returns."""
    path = os.fspath(path)
    if path.endswith(PT_SUFFIXES):
        return save_pt(path, layers)
    if format == "hdf5" or path.endswith(".h5"):
        return write_caffemodel_h5(path, layers)
    return write_caffemodel(path, layers, format=format, name=name)
