"""Layer messages from one dialect to another, by field *name* (never by number: DeepLab v1 and
BVLC give the same numbers different meanings).

Dialects: "v2" (BVLC LayerParameter), "v1" (BVLC V1LayerParameter), "deeplab_v1" (DeepLab v1's
V1-style LayerParameter), "normalized" (``LayerSpec.message``: V2 plus DeepLab's parameters).
A V1 layer going to another dialect is first upgraded by ``proto.upgrade.upgrade_v1_layer``, the
upgrade prototxt files get too (Caffe's UpgradeV1LayerParameter, DeepLab's hole -> dilation).
Writing a V1 file then takes the V2 layer back down: param[i].lr_mult / decay_mult / name /
share_mode -> blobs_lr[i] / weight_decay[i] / param[i] / blob_share_mode[i], and for DeepLab v1
dilation -> hole.  Fields the target cannot hold (V2's phase in V1, DeepLab's interp_param in
BVLC V2, ...) are dropped and listed in ``dropped``.
"""
from ..errors import CaffeError
from ..proto.layer_types import DEEPLAB_V1_ONLY, V2_TO_V1
from ..proto.message import Message
from ..proto.schema import get_schema
from ..proto.upgrade import V1_PARAM_LISTS, upgrade_v1_layer

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


def _dilation_to_hole(conv):
    """BVLC's dilation as DeepLab v1's hole (one value) or hole_h + hole_w (one per axis)."""
    conv = conv.copy()
    d = conv.fields.pop("dilation")
    d = d if isinstance(d, list) else [d]
    if len(d) == 1 or (len(d) == 2 and d[0] == d[1]):
        conv.fields["hole"] = d[0]
    elif len(d) == 2:
        conv.fields["hole_h"], conv.fields["hole_w"] = d
    else:
        raise CaffeError(f"DeepLab v1's hole is 2-D; cannot hold dilation {d}")
    return conv


def _v2_to_v1(msg, dst_dialect):
    """A V2 layer message in V1 form: the inverse of UpgradeV1LayerParameter's param rules."""
    fields = dict(msg.fields)
    params = fields.pop("param", [])
    for key, spec_key, default in V1_PARAM_LISTS:
        if any(p.has(spec_key) for p in params):
            fields[key] = [p.get(spec_key, default) for p in params]
    conv = fields.get("convolution_param")
    if dst_dialect == "deeplab_v1" and conv is not None and conv.has("dilation"):
        fields["convolution_param"] = _dilation_to_hole(conv)
    return Message(msg.type_name, fields, msg.where)


def convert_layer(msg, src_dialect, dst_dialect, dropped, path="layer"):
    """``msg`` (a layer message of ``src_dialect``) as a layer message of ``dst_dialect``.

    ``type`` and ``blobs`` are not converted: the writer sets them."""
    src_v2 = DIALECTS[src_dialect][1] == "v2"
    dst_v2 = DIALECTS[dst_dialect][1] == "v2"
    msg = Message(msg.type_name, {k: v for k, v in msg.fields.items()
                                  if k not in ("type", "blobs")}, msg.where)
    if not src_v2 and src_dialect != dst_dialect:
        msg, src_v2 = upgrade_v1_layer(msg, src_dialect, path=None), True
    if src_v2 and not dst_v2:
        msg = _v2_to_v1(msg, dst_dialect)
    return port(msg, get_schema(DIALECTS[dst_dialect][0]), layer_type_name(dst_dialect), path,
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
                                                      if type_v2 in DEEPLAB_V1_ONLY else ""))
    return v1
