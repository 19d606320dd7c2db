"""Layer messages from one dialect to another, by field *name* (never by number: DeepLab v1 and
BVLC give the same numbers different meanings).

Dialects: "v2" (BVLC LayerParameter), "v1" (BVLC V1LayerParameter), "deeplab_v1" (DeepLab v1's
V1-style LayerParameter), "normalized" (``LayerSpec.message``: V2 plus DeepLab's parameters).
Caffe's own V1 -> V2 rules apply (``UpgradeV1LayerParameter``): blobs_lr[i] / weight_decay[i] /
param[i] / blob_share_mode[i] <-> param[i].lr_mult / decay_mult / name / share_mode, enum type
<-> type string; DeepLab's ``hole`` (or hole_h, hole_w) <-> BVLC's ``dilation``.  Fields the
target cannot hold (V2's phase in V1, DeepLab's interp_param in BVLC V2, ...) are dropped and
listed in ``dropped``.
"""
from ..errors import CaffeError
from ..proto.message import Message
from ..proto.schema import get_schema
from .types import V1_TO_V2, V2_TO_V1

DIALECTS = {"v2": ("bvlc", "v2"), "v1": ("bvlc", "v1"), "deeplab_v1": ("deeplab_v1", "v1"),
            "normalized": ("normalized", "v2")}


def dialect_of(schema, fmt):
    if fmt == "v2":
        return "normalized" if schema == "normalized" else "v2"
    return "deeplab_v1" if schema == "deeplab_v1" else "v1"


def layer_type_name(dialect):
    """The layer message type of a dialect."""
    schema, fmt = DIALECTS[dialect]
    return get_schema(schema).messages["NetParameter"].by_name[
        "layer" if fmt == "v2" else "layers"].type_name


def port(src, schema, type_name, path, dropped):
    """Copy ``src`` into a new ``type_name`` message of ``schema``, field by field name."""
    mdef = schema.messages[type_name]
    out = Message(type_name)
    for name, value in src.fields.items():
        if value is None:
            continue
        fd = mdef.by_name.get(name)
        if fd is None:
            dropped.append(f"{path}.{name}")
            continue
        values = value if isinstance(value, list) else [value]
        kept = []
        for v in values:
            if fd.type == "message":
                if isinstance(v, Message):
                    v = _hole_dilation(v, schema, fd.type_name)
                    kept.append(port(v, schema, fd.type_name, f"{path}.{name}", dropped))
                else:
                    dropped.append(f"{path}.{name}")
            elif fd.type == "enum":
                table = schema.enums.get(fd.type_name, {})
                if (isinstance(v, str) and v in table) or (isinstance(v, int) and
                                                           v in table.values()):
                    kept.append(v)
                else:
                    dropped.append(f"{path}.{name}={v}")
            elif isinstance(v, Message):
                dropped.append(f"{path}.{name}")
            else:
                kept.append(v)
        if fd.repeated:
            if kept:
                out.fields[name] = kept
        elif len(kept) == 1:
            out.fields[name] = kept[0]
        elif len(kept) > 1:
            dropped.append(f"{path}.{name} ({len(kept)} values; the target holds one)")
    return out


def _hole_dilation(msg, schema, type_name):
    """DeepLab's hole / hole_h+hole_w <-> BVLC's dilation, for the target's ConvolutionParameter."""
    if type_name != "ConvolutionParameter":
        return msg
    target = schema.messages[type_name].by_name
    if "dilation" in target and any(msg.has(k) for k in ("hole", "hole_h", "hole_w")):
        msg = msg.copy()
        hole = msg.fields.pop("hole", None)
        hole_h, hole_w = msg.fields.pop("hole_h", None), msg.fields.pop("hole_w", None)
        if hole_h is not None or hole_w is not None:
            msg.fields["dilation"] = [hole_h or 1, hole_w or 1]
        elif hole is not None and hole != 1:
            msg.fields["dilation"] = [hole]
    elif "hole" in target and msg.has("dilation"):
        msg = msg.copy()
        d = msg.fields.pop("dilation")
        d = d if isinstance(d, list) else [d]
        if len(d) == 1 or (len(d) == 2 and d[0] == d[1]):
            msg.fields["hole"] = d[0]
        elif len(d) == 2:
            msg.fields["hole_h"], msg.fields["hole_w"] = d
        else:
            raise CaffeError(f"DeepLab v1's hole is 2-D; cannot hold dilation {d}")
    return msg


def convert_layer(msg, src_dialect, dst_dialect, dropped, path="layer"):
    """``msg`` (a layer message of ``src_dialect``) as a layer message of ``dst_dialect``.

    ``type`` and ``blobs`` are not converted: the writer sets them."""
    dst_schema = get_schema(DIALECTS[dst_dialect][0])
    src_v2 = DIALECTS[src_dialect][1] == "v2"
    dst_v2 = DIALECTS[dst_dialect][1] == "v2"
    fields = {k: v for k, v in msg.fields.items() if k not in ("type", "blobs")}
    if src_v2 and not dst_v2:
        params = fields.pop("param", [])
        for key, spec_key, default in (("blobs_lr", "lr_mult", 1.0),
                                       ("weight_decay", "decay_mult", 1.0),
                                       ("param", "name", ""), ("blob_share_mode", "share_mode",
                                                               "STRICT")):
            if any(p.has(spec_key) for p in params):
                fields[key] = [p.get(spec_key, default) for p in params]
    elif dst_v2 and not src_v2:
        lists = {k: fields.pop(k, []) for k in ("blobs_lr", "weight_decay", "param",
                                                "blob_share_mode")}
        n = max(len(v) for v in lists.values())
        params = []
        for i in range(n):
            p = Message("ParamSpec")
            for key, spec_key in (("blobs_lr", "lr_mult"), ("weight_decay", "decay_mult"),
                                  ("param", "name"), ("blob_share_mode", "share_mode")):
                if i < len(lists[key]):
                    p.fields[spec_key] = lists[key][i]
            params.append(p)
        if params:
            fields["param"] = params
    return port(Message(msg.type_name, fields), dst_schema, layer_type_name(dst_dialect), path,
                dropped)


def type_value(type_v2, dst_dialect, layer_name):
    """The ``type`` field value for a layer of V2 type ``type_v2`` in ``dst_dialect``."""
    schema, fmt = DIALECTS[dst_dialect]
    if fmt == "v2":
        return type_v2
    if type_v2.startswith("V1Type") and type_v2[6:].isdigit():
        return int(type_v2[6:])
    v1 = V2_TO_V1.get(type_v2)
    s = get_schema(schema)
    enum = s.messages[layer_type_name(dst_dialect)].by_name["type"].type_name
    if v1 is None or v1 not in s.enums[enum]:
        which = "DeepLab v1" if schema == "deeplab_v1" else "BVLC V1"
        raise CaffeError(f"layer '{layer_name}': type '{type_v2}' has no {which} enum value; "
                         "write it as format='v2'" + (" or with schema='deeplab_v1'"
                                                      if type_v2 in DL1_ONLY else ""))
    return v1


# V2 names that only DeepLab v1's V1 enum has (and BVLC's V1 enum lacks).
DL1_ONLY = frozenset(V1_TO_V2[k] for k in (
    "IMAGE_SEG_DATA", "SEG_ACCURACY", "INTERP", "PADDING", "MAT_WRITE", "MAT_READ", "DENSE_CRF",
    "DOMINANT_CHANNEL", "BIAS_CHANNEL", "UNIQUE_LABEL", "CENSOR_LABEL", "ADAPTIVE_BIAS_CHANNEL",
    "CHANNEL_AGGREGATOR", "IGNORE_OVERLAY", "HISTOGRAM", "RELATIVE_ERROR", "GAIN_CHANNEL",
    "ONEHOT"))
