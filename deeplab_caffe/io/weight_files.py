"""Weight files of either format, chosen for the caller: a .caffemodel (``caffemodel.py``) or a
.pt state dict (``state_dict.py``).  Reading decides by content, writing by the file name."""
import os

from .caffemodel import read_caffemodel, write_caffemodel
from .state_dict import PT_SUFFIXES, is_pt, read_pt, save_pt


def read_weights(path, schema="auto"):
    """A CaffeModel from a .caffemodel or a .pt state dict (``.format == "pt"``, types "")."""
    if is_pt(path):
        return read_pt(path)
    return read_caffemodel(path, schema)


def write_weights(path, layers, format="v2", name=None):
    """Write ``layers`` as a .pt state dict when ``path`` ends in .pt/.pth, else as a
    .caffemodel in ``format`` ("v2" or "v1"); returns what the writer returns."""
    if os.fspath(path).endswith(PT_SUFFIXES):
        return save_pt(path, layers)
    return write_caffemodel(path, layers, format=format, name=name)
