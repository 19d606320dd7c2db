"""Builds layers from plain dicts in tests: ``make_layer("Pooling", {"pooling_param": {...}})``.

Nested dicts become ``Message``s; the message type is named after the field (``pooling_param``
-> ``PoolingParameter``; fillers -> ``FillerParameter``), as the schema would.
"""
import torch

from deeplab_caffe.errors import NetError
from deeplab_caffe.layers.base import get_layer_class
from deeplab_caffe.proto.message import Message
from deeplab_caffe.proto.spec import LayerSpec

# Layer tests use tiny tensors: one intra-op thread avoids oversubscription on a busy machine
# (2 threads measured ~10x slower on the shared 2-core CI box).
torch.set_num_threads(1)

_TYPE_NAMES = {"weight_filler": "FillerParameter", "bias_filler": "FillerParameter",
               "softmaxloss_param": "SoftmaxLossParameter"}


def _type_name(field):
    if field in _TYPE_NAMES:
        return _TYPE_NAMES[field]
    base = field[:-len("_param")] if field.endswith("_param") else field
    return "".join(w.capitalize() for w in base.split("_")) + "Parameter"


def to_message(type_name, fields):
    out = {}
    for k, v in fields.items():
        out[k] = to_message(_type_name(k), v) if isinstance(v, dict) else v
    return Message(type_name, out)


def make_spec(type_name, params=None, bottom=("data",), top=("out",), name="layer1"):
    return LayerSpec(name=name, type=type_name, bottom=list(bottom), top=list(top),
                     message=to_message("LayerParameter", params or {}), where="test.prototxt:3:1")


def make_layer(type_name, params=None, bottom=("data",), top=("out",), name="layer1",
               phase="TEST"):
    spec = make_spec(type_name, params, bottom, top, name)
    return get_layer_class(type_name, spec)(spec, phase)


def build(type_name, params, bottom_shapes, top=("out",), name="layer1", phase="TEST"):
    """make_layer + setup; returns (layer, top_shapes)."""
    bottom = [f"b{i}" for i in range(len(bottom_shapes))]
    layer = make_layer(type_name, params, bottom, top, name, phase)
    return layer, layer.setup([tuple(s) for s in bottom_shapes])


def expect_net_error(fn, *words, layer="layer1"):
    """Run ``fn``; it must raise NetError naming ``layer`` and containing every word."""
    try:
        fn()
    except NetError as e:
        assert e.layer == layer, e
        assert layer in str(e)
        for w in words:
            assert w in str(e), (w, str(e))
        return e
    raise AssertionError("no NetError raised")


def distinct(shape, dtype=torch.float64, seed=0):
    """Random values that are all different (safe for max/argmax gradient checks)."""
    g = torch.Generator().manual_seed(seed)
    n = 1
    for s in shape:
        n *= s
    return (torch.randperm(n, generator=g).to(dtype) / n + 0.01 * torch.rand(
        n, generator=g, dtype=dtype) / n).reshape(shape) - 0.5
