"""Caffe's binary files without Caffe: .caffemodel (BVLC V2, BVLC V1, DeepLab v1) and
.solverstate, read and written with our own wire codec (``proto/wire.py``), and the .pt state
dict as a second weight format (``read_weights`` / ``write_weights`` pick the format).

    m = read_caffemodel("x.caffemodel")            # schema="auto" | "bvlc" | "deeplab_v1"
    m.format, m.schema, m.schema_reason
    for layer in m.layers: layer.name, layer.type, [b.shape for b in layer.blobs]
    write_caffemodel("y.caffemodel", m, format="v1")
    s = read_solverstate("x.solverstate"); s.iter, s.history
"""
from ..proto.layer_types import V1_TO_V2, V2_TO_V1
from .blobs import shape_equals
from .caffemodel import (CaffeLayer, CaffeModel, build_net_message, decode_net, read_caffemodel,
                         write_caffemodel)
from .detect import Detection, detect
from .solverstate import SolverState, decode_solverstate, read_solverstate, write_solverstate
from .state_dict import read_pt, save_pt
from .weight_files import read_weights, write_weights

__all__ = ["CaffeLayer", "CaffeModel", "Detection", "SolverState", "V1_TO_V2", "V2_TO_V1",
           "build_net_message", "decode_net", "decode_solverstate", "detect", "read_caffemodel",
           "read_pt", "read_solverstate", "read_weights", "save_pt", "shape_equals",
           "write_caffemodel", "write_solverstate", "write_weights"]
