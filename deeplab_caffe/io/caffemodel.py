"""Read and write .caffemodel files (NetParameter with blobs): BVLC V2, BVLC V1, DeepLab v1."""
import logging
import os

from ..errors import CaffeError
from ..proto import wire
from ..proto.layer_types import DEEPLAB_V1_ONLY, v2_type_name
from ..proto.message import Message
from ..proto.schema import get_schema
from . import detect as _detect
from ._files import atomic_write, decode_file
from .blobs import (as_float32, blob_from_proto, blob_to_proto, legacy_axes, require_blobs,
                    shape_equals)
from .convert import DIALECTS, convert_layer, dialect_of, layer_type_name, type_value

log = logging.getLogger("deeplab_caffe.io")

SCHEMAS = ("auto", "bvlc", "deeplab_v1")


class CaffeLayer:
    """One layer of a weight file.

    name     the layer name (weights are matched by it)
    type     V2 type name ("Convolution", "InnerProduct", "Interp"; "" for V1 NONE)
    blobs    list of float32 numpy arrays in Caffe's shapes (see ``blobs.py``)
    message  the layer's parameters as decoded (a Message of the file's dialect, without blobs)
    dialect  "v2", "v1" or "deeplab_v1": what ``message`` is
    disk_shapes, legacy   per blob: the shape as stored and whether it was legacy 4-D
    """
    __slots__ = ("name", "type", "blobs", "message", "dialect", "disk_shapes", "legacy")

    def __init__(self, name, type, blobs, message=None, dialect="v2", disk_shapes=None,
                 legacy=None):
        self.name, self.type, self.blobs = name, type, list(blobs)
        self.message, self.dialect = message, dialect
        self.disk_shapes = list(disk_shapes) if disk_shapes is not None else \
            [tuple(b.shape) for b in self.blobs]
        self.legacy = list(legacy) if legacy is not None else [False] * len(self.blobs)

    def shape_equals(self, i, target_shape):
        """Caffe's ShapeEquals of blob ``i`` against a target blob shape."""
        return shape_equals(target_shape, self.disk_shapes[i], self.legacy[i])

    def __repr__(self):
        shapes = ", ".join("x".join(map(str, b.shape)) or "scalar" for b in self.blobs)
        return f"CaffeLayer({self.name!r}, {self.type!r}, [{shapes}])"


class CaffeModel:
    """What ``read_caffemodel`` returns.

    name, layers (list of CaffeLayer, file order), format ("v1"/"v2"), schema ("bvlc" /
    "deeplab_v1"), schema_reason (why), path, message (the NetParameter without blobs),
    unknown_count / unknown (fields the schema did not know: (field_path, number, wire type,
    offset))."""

    def __init__(self, name="", layers=(), format="v2", schema="bvlc", schema_reason="",
                 path=None, message=None, unknown_count=0, unknown=()):
        self.name, self.layers = name, list(layers)
        self.format, self.schema, self.schema_reason = format, schema, schema_reason
        self.path, self.message = path, message
        self.unknown_count, self.unknown = unknown_count, list(unknown)

    @property
    def dialect(self):
        """"v2", "v1" or "deeplab_v1" (upgrade.py's names); None for a .pt state dict."""
        return dialect_of(self.schema, self.format) if self.format in ("v1", "v2") else None

    def layer(self, name):
        """The first layer called ``name`` (KeyError if none)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def state_dict(self):
        """{"<layer>.<i>": float32 array} for every blob, in file order."""
        return {f"{l.name}.{i}": b for l in self.layers for i, b in enumerate(l.blobs)}

    def __repr__(self):
        return (f"CaffeModel({self.name!r}, {len(self.layers)} layers, format={self.format!r}, "
                f"schema={self.schema!r})")


def decode_net(buf, schema="auto", source="<bytes>", copy_arrays=True):
    """A CaffeModel from the bytes of a NetParameter (see ``read_caffemodel``).  copy_arrays
    False: the blobs may be views of ``buf`` (a buffer that nobody writes to afterwards)."""
    if schema not in SCHEMAS:
        raise CaffeError(f"schema must be one of {', '.join(SCHEMAS)}, got {schema!r}")
    if schema == "auto":
        found = _detect.detect(buf)
        fmt, schema, reason = found.format, found.schema, found.reason
    else:
        fmt = _detect.file_format(buf)
        if fmt == "v2" and schema == "deeplab_v1":
            raise CaffeError(f"{source}: this is a V2 file (NetParameter.layer = 100), which "
                             "DeepLab v1's schema cannot hold; use schema='bvlc'")
        reason = f"schema={schema!r} given by the caller"
    log.info("%s: %s file, %s schema (%s)", source, fmt.upper(), schema, reason)
    decoder = wire.Decoder(get_schema(schema), copy_arrays=copy_arrays)
    net = decoder.decode(buf, "NetParameter")
    dialect = dialect_of(schema, fmt)
    layers = []
    for i, lp in enumerate(net.getlist("layer" if fmt == "v2" else "layers")):
        where = f"NetParameter.{'layer' if fmt == 'v2' else 'layers'}[{i}]"
        ltype = lp.get("type", "") if fmt == "v2" else v2_type_name(lp.get("type", "NONE"))
        blobs, disk, legacy = [], [], []
        for j, bp in enumerate(lp.getlist("blobs")):
            arr, d, leg = blob_from_proto(bp, f"{where}.blobs[{j}]", legacy_axes(ltype, j))
            blobs.append(arr)
            disk.append(d)
            legacy.append(leg)
        lp.fields.pop("blobs", None)
        layers.append(CaffeLayer(lp.get("name", ""), ltype, blobs, lp, dialect, disk, legacy))
    if decoder.unknown_count:
        log.info("%s: skipped %d field(s) the %s schema does not know, e.g. %s", source,
                 decoder.unknown_count, schema,
                 ", ".join(f"{p} field {n}" for p, n, _, _ in decoder.unknown[:3]))
    return CaffeModel(net.get("name", ""), layers, fmt, schema, reason, source, net,
                      decoder.unknown_count, decoder.unknown)


def read_caffemodel(path, schema="auto"):
    """Read a .caffemodel (or any binary NetParameter) without Caffe or protoc.

    schema: "auto" decides from evidence in the file (``detect.py``) and records why in
    ``.schema_reason`` (also logged to the "deeplab_caffe.io" logger); an ambiguous file raises
    CaffeError asking for schema="bvlc" or "deeplab_v1".  Corrupt or truncated files raise
    WireError naming the file, the byte offset and the field path."""
    path = os.fspath(path)
    return decode_file(path, lambda buf: decode_net(buf, schema, path, copy_arrays=False))


# ---------------------------------------------------------------------------------------------
# Writing

def _entries(net):
    """(name, type, blobs, message, dialect, diffs) for each layer of a CaffeModel, a list of
    CaffeLayer-like objects (.name, .type or .type_name, .blobs, optional .message or
    .spec.message, optional .diffs: the blobs' diffs to write too, snapshot_diff's), (name,
    type, blobs) tuples, or a {name: [blobs]} mapping."""
    default_dialect = "normalized"
    if isinstance(net, CaffeModel):
        net = net.layers
    elif hasattr(net, "layers") and not isinstance(net, dict):
        net = net.layers
    if isinstance(net, dict):
        net = [(k, "", v) for k, v in net.items()]
    out = []
    for item in net:
        diffs = None
        if isinstance(item, tuple):
            name, ltype, blobs = item
            message, dialect = None, default_dialect
        else:
            name = item.name
            ltype = getattr(item, "type", None)
            if not isinstance(ltype, str):
                ltype = getattr(item, "type_name", None) or ""
            message = getattr(item, "message", None)
            spec = getattr(item, "spec", None)
            if message is None and spec is not None:
                message = getattr(spec, "message", None)
            dialect = getattr(item, "dialect", default_dialect)
            blobs, diffs = item.blobs, getattr(item, "diffs", None)
        require_blobs(name, blobs)
        out.append((name, ltype, [as_float32(b) for b in blobs], message, dialect, diffs))
    return out


def _target_schema(entries, format, schema):
    if format == "v2":
        if schema not in (None, "bvlc"):
            raise CaffeError(f"format='v2' is BVLC's; schema={schema!r} applies to V1 only")
        return "bvlc"
    if schema is not None:
        if schema not in ("bvlc", "deeplab_v1"):
            raise CaffeError(f"schema must be 'bvlc' or 'deeplab_v1', got {schema!r}")
        return schema
    types = {e[1] for e in entries}
    if types & DEEPLAB_V1_ONLY or (entries and all(e[4] == "deeplab_v1" for e in entries)):
        return "deeplab_v1" if "Deconvolution" not in types else "bvlc"
    return "bvlc"


def build_net_message(net, format="v2", schema=None, name=None, params=True):
    """The NetParameter Message ``write_caffemodel`` writes, and its schema name."""
    if format not in ("v1", "v2"):
        raise CaffeError(f"format must be 'v1' or 'v2', got {format!r}")
    entries = _entries(net)
    schema = _target_schema(entries, format, schema)
    dst = dialect_of(schema, format)
    if name is None:
        name = getattr(net, "name", "") or ""
    dropped, layers = [], []
    legacy = format == "v1"
    for i, (lname, ltype, blobs, message, src, diffs) in enumerate(entries):
        path = f"{lname or i}"
        if params and message is not None:
            lp = convert_layer(message, src if src in DIALECTS else "normalized", dst, dropped,
                               path)
        else:
            lp = Message(layer_type_name(dst))
        lp.fields["name"] = lname
        lp.fields["type"] = type_value(ltype, dst, lname)
        if blobs:
            lp.fields["blobs"] = [blob_to_proto(b, legacy, None if diffs is None else diffs[j])
                                  for j, b in enumerate(blobs)]
        layers.append(lp)
    if dropped:
        log.info("write_caffemodel: %d parameter field(s) have no place in the %s %s schema and "
                 "were left out, e.g. %s", len(dropped), schema, format.upper(),
                 ", ".join(dropped[:5]))
    fields = {"name": name} if name else {}
    fields["layer" if format == "v2" else "layers"] = layers
    return Message("NetParameter", fields), schema


def write_caffemodel(path, net, format="v2", schema=None, name=None, params=True, fsync=True):
    """Write weights as a .caffemodel that Caffe reads.

    net: a CaffeModel, a list of layers (CaffeLayer, or anything with .name, .type and .blobs;
    numpy arrays or torch tensors), (name, type, blobs) tuples, or {name: [blobs]}.
    format "v2": ``layer = 100`` with type strings and BlobShape dims (BVLC Caffe).
    format "v1": ``layers = 2`` with enum types and legacy 4-D blobs (old Caffe, DeepLab v1);
    schema picks the V1 enum table ("bvlc" or "deeplab_v1"; default: DeepLab's when a
    DeepLab-only type such as Interp is present).  params=False writes names, types and blobs
    only.  The file is written to a temporary name and renamed (atomic)."""
    msg, schema = build_net_message(net, format, schema, name, params)
    encoder = wire.Encoder(get_schema(schema))
    with atomic_write(path, fsync) as f:
        encoder.write(f, msg)
    return schema


__all__ = ["CaffeLayer", "CaffeModel", "read_caffemodel", "write_caffemodel", "decode_net",
           "build_net_message", "shape_equals"]
