"""Dialect detection and the upgrade of every Caffe net dialect to one normalized NetSpec.

Dialects: "v2" (BVLC ``layer { type: "Convolution" }``), "v1" (BVLC ``layers { type: CONVOLUTION
}``) and "deeplab_v1" (deeplab-public's ``layers { }``: its own numbers, ``hole``, IMAGE_SEG_DATA).
A text file's V1 flavour is decided by evidence (``detect_dialect``); the two are never mixed.

What the normalized ``LayerSpec.message`` (schema "normalized", type LayerParameter) holds:
  * V2 type names, as Caffe's UpgradeV1LayerType gives them (SOFTMAX_LOSS -> "SoftmaxWithLoss"),
    and DeepLab's: IMAGE_SEG_DATA -> "ImageSegData", INTERP -> "Interp", DENSE_CRF -> "DenseCRF"...
  * ``param``: ParamSpec messages built from V1 ``param`` (sharing names), ``blob_share_mode``,
    ``blobs_lr`` (-> lr_mult) and ``weight_decay`` (-> decay_mult), as UpgradeV1LayerParameter.
  * ``convolution_param``: pad / kernel_size / stride always lists (V2); DeepLab's ``hole: h``
    becomes ``dilation: [h]`` and ``hole_h: a hole_w: b`` becomes ``dilation: [a, b]`` (V2's
    per-spatial-axis rule: one value for both axes, or one per axis in (h, w) order).
  * DeepLab's own sub-messages keep their names and contents: image_data_param (with label_type,
    ignore_label, has_label for ImageSegData), interp_param, padding_param, dense_crf_param,
    seg_accuracy_param, mat_write_param, mat_read_param, and softmaxloss_param (its repeated
    ``ignore_label`` list and ``weight_source``) on the SoftmaxWithLoss layer.
  * ``strict_dim`` when the file set it (also on LayerSpec.strict_dim).
  * The deprecated net-level input / input_dim / input_shape become a first layer named "input",
    type "Input", with one input_param.shape per top.
"""
from ..errors import CaffeError, PrototxtError
from .layer_types import DEEPLAB_V1_TYPES, V1_TYPE_NAMES
from .message import Message
from .spec import LayerSpec, NetSpec, ParamSpec
from .text_format import parse_tokens
from .text_writer import to_text
from .tokenizer import tokenize

SCHEMA_OF_DIALECT = {"v2": "normalized", "v1": "bvlc", "deeplab_v1": "deeplab_v1"}

# Unambiguous evidence for a V1 file's flavour (names that exist in only one of the schemas).
_DL1_FIELDS = frozenset(["hole", "hole_h", "hole_w", "strict_dim", "interp_param",
                         "softmaxloss_param", "seg_accuracy_param", "padding_param",
                         "mat_write_param", "mat_read_param", "dense_crf_param",
                         "label_type", "has_label", "max_labels"])
_BVLC_TYPES = frozenset(["DECONVOLUTION"])
_BVLC_FIELDS = frozenset(["loss_param", "dilation", "force_nd_im2col", "round_mode",
                          "variance_norm", "force_color", "force_gray"])


def _error(msg, where, fallback_path="<string>"):
    """A PrototxtError at a Message.where string "path:line:col"; a CaffeError naming only the
    layer for a message decoded from a binary file (no where, no path)."""
    if where is None and fallback_path is None:
        return CaffeError(msg)
    if where:
        parts = where.rsplit(":", 2)
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            return PrototxtError(msg, parts[0], int(parts[1]), int(parts[2]))
        return PrototxtError(msg, where)
    return PrototxtError(msg, fallback_path)


def detect_dialect(tokens, path="<string>"):
    """("v2" | "v1" | "deeplab_v1", {top-level field name: its first token}) of a net's tokens."""
    depth, top, dl1, bvlc = 0, {}, None, None
    for i, tok in enumerate(tokens):
        if tok.kind == "sym":
            if tok.value in "{<":
                depth += 1
            elif tok.value in "}>":
                depth = max(depth - 1, 0)
            continue
        if tok.kind != "word":
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        is_field = nxt is not None and nxt.kind == "sym" and nxt.value in ":{<"
        if is_field and depth == 0:
            top.setdefault(tok.value, tok)
        is_type = i >= 2 and tokens[i - 1].value == ":" and tokens[i - 2].value == "type"
        if (is_field and tok.value in _DL1_FIELDS) or (is_type and tok.value in DEEPLAB_V1_TYPES):
            dl1 = dl1 or tok
        if (is_field and tok.value in _BVLC_FIELDS) or (is_type and tok.value in _BVLC_TYPES):
            bvlc = bvlc or tok
    if "layer" in top and "layers" in top:
        a, b = sorted((top["layer"], top["layers"]), key=lambda t: (t.line, t.col))
        raise PrototxtError(f"'{b.value}' after '{a.value}' (line {a.line}): a net uses either "
                            "V2 `layer { }` or V1 `layers { }` blocks, not both",
                            path, b.line, b.col)
    if "layers" not in top:
        return "v2", top
    if dl1 is not None and bvlc is not None:
        later = max(dl1, bvlc, key=lambda t: (t.line, t.col))
        raise PrototxtError(
            f"this V1 file mixes DeepLab v1 syntax ('{dl1.value}' at line {dl1.line}:{dl1.col}) "
            f"with BVLC-only syntax ('{bvlc.value}' at line {bvlc.line}:{bvlc.col}); their "
            "caffe.proto numbers clash, so a file must be one or the other",
            path, later.line, later.col)
    return ("deeplab_v1" if dl1 is not None else "v1"), top


def parse_net_text(text, path="<string>", defines=None):
    """A NetSpec from prototxt text of any dialect."""
    tokens = tokenize(text, path, defines)
    dialect, top = detect_dialect(tokens, path)
    msg = parse_tokens(tokens, "NetParameter", SCHEMA_OF_DIALECT[dialect], path)
    input_tok = top.get("input") or top.get("input_dim") or top.get("input_shape")
    where = f"{path}:{input_tok.line}:{input_tok.col}" if input_tok is not None else None
    return upgrade_net(msg, dialect, path, input_where=where)


def upgrade_net(msg, dialect=None, path=None, input_where=None):
    """NetSpec from a NetParameter Message (text or binary decoded) of ``dialect``.

    ``dialect`` None: "v2" when it has ``layer``, else "deeplab_v1" or "v1" from the message
    type of its ``layers`` (DeepLab's schema calls it LayerParameter, BVLC's V1LayerParameter)."""
    path = path or (msg.where.rsplit(":", 2)[0] if msg.where else "<string>")
    if dialect is None:
        v1 = msg.getlist("layers")
        dialect = "v2" if msg.has("layer") or not v1 else (
            "deeplab_v1" if v1[0].type_name == "LayerParameter" else "v1")
    spec = NetSpec(name=msg.get("name", ""), force_backward=bool(msg.get("force_backward", False)),
                   state=msg.get("state"), dialect=dialect, path=path)
    where = input_where or msg.where
    input_layer = _input_layer(msg, where, path)
    if input_layer is not None:
        spec.layers.append(input_layer)
    if msg.has("layer") and msg.has("layers"):
        raise _error("a net uses either V2 `layer` or V1 `layers`, not both", msg.where, path)
    for lm in msg.getlist("layer"):
        spec.layers.append(_layer_spec(lm, path))
    for lm in msg.getlist("layers"):
        spec.layers.append(_layer_spec(upgrade_v1_layer(lm, dialect, path), path))
    for layer in spec.layers:
        layer.dialect = dialect
    return spec


def _input_layer(msg, where, path):
    inputs, dims, shapes = msg.getlist("input"), msg.getlist("input_dim"), \
        msg.getlist("input_shape")
    if not inputs:
        if dims or shapes:
            raise _error("input_dim / input_shape given without any 'input' name", where, path)
        return None
    if dims and shapes:
        raise _error("give either input_dim or input_shape, not both", where, path)
    blob_shapes = []
    if shapes:
        if len(shapes) != len(inputs):
            raise _error(f"{len(inputs)} input(s) but {len(shapes)} input_shape(s); give one "
                         "input_shape per input", where, path)
        blob_shapes = [s.copy() for s in shapes]
    elif dims:
        if len(dims) != 4 * len(inputs):
            raise _error(f"{len(inputs)} input(s) need {4 * len(inputs)} input_dim values "
                         f"(N, C, H, W each), got {len(dims)}", where, path)
        blob_shapes = [Message("BlobShape", {"dim": list(dims[4 * i:4 * i + 4])})
                       for i in range(len(inputs))]
    m = Message("LayerParameter", {"name": "input", "type": "Input", "top": list(inputs)},
                where=where)
    if blob_shapes:
        m["input_param"] = Message("InputParameter", {"shape": blob_shapes}, where=where)
    return _layer_spec(m, path)


def _layer_spec(m, path):
    """LayerSpec over a normalized LayerParameter Message."""
    name = m.get("name", "")
    if not m.get("type"):
        raise _error(f"layer '{name}' has no type", m.where, path)
    params = [ParamSpec(name=p.get("name", ""), lr_mult=float(p.get("lr_mult", 1.0)),
                        decay_mult=float(p.get("decay_mult", 1.0)),
                        share_mode=p.get("share_mode", "STRICT"), has_lr_mult=p.has("lr_mult"),
                        has_decay_mult=p.has("decay_mult")) for p in m.getlist("param")]
    return LayerSpec(name=name, type=m["type"], bottom=list(m.getlist("bottom")),
                     top=list(m.getlist("top")), param=params,
                     loss_weight=[float(w) for w in m.getlist("loss_weight")],
                     include=list(m.getlist("include")), exclude=list(m.getlist("exclude")),
                     propagate_down=list(m.getlist("propagate_down")),
                     strict_dim=bool(m.get("strict_dim", True)), message=m, where=m.where,
                     phase=m.get("phase"))


# UpgradeV1LayerParameter's per-blob lists: (V1 list field, its ParamSpec field, ParamSpec default).
V1_PARAM_LISTS = (("param", "name", ""), ("blob_share_mode", "share_mode", "STRICT"),
                  ("blobs_lr", "lr_mult", 1.0), ("weight_decay", "decay_mult", 1.0))
_V1_PARAM_FIELDS = frozenset(v1 for v1, _, _ in V1_PARAM_LISTS)


def upgrade_v1_layer(lm, dialect, path="<string>"):
    """A V1 / DeepLab v1 layer Message as a normalized V2 LayerParameter Message: Caffe's
    UpgradeV1LayerParameter plus DeepLab's hole -> dilation.

    The one V1 -> V2 upgrade, for prototxt layers and .caffemodel layers alike (``io/convert.py``
    calls it with ``path=None``: errors then name the layer only).  A message without ``type``
    (the binary writer sets the type itself) gets none."""
    out = Message("LayerParameter", where=lm.where)
    name = lm.get("name", "")
    for key, value in lm.items():
        if key == "type":
            if value not in V1_TYPE_NAMES:
                raise _error(f"layer '{name}': layer type {value} has no V2 equivalent",
                             lm.where, path)
            out["type"] = V1_TYPE_NAMES[value]
        elif key in _V1_PARAM_FIELDS:
            continue
        elif key == "convolution_param" and dialect == "deeplab_v1":
            out[key] = _conv_from_deeplab(value, name, path)
        elif isinstance(value, Message):
            out[key] = value.copy()
        elif isinstance(value, list):
            out[key] = [v.copy() if isinstance(v, Message) else v for v in value]
        else:
            out[key] = value
    specs = []

    def at(i):
        while len(specs) <= i:
            specs.append(Message("ParamSpec", where=lm.where))
        return specs[i]
    for v1_key, spec_key, _ in V1_PARAM_LISTS:
        for i, v in enumerate(lm.getlist(v1_key)):
            at(i)[spec_key] = v
    if specs:
        out["param"] = specs
    return out


def _conv_from_deeplab(c, layer, path):
    """DeepLab v1 ConvolutionParameter -> V2 form (lists; hole -> dilation).

    DeepLab's ConvolutionLayer::LayerSetUp CHECKs "hole is hole OR hole_h and hole_w are
    required" (src/caffe/layers/conv_layer.cpp): ``hole`` with ``hole_h``/``hole_w``, or one of
    the pair alone, aborts there, so it is an error here too and never a guess."""
    out = Message("ConvolutionParameter", where=c.where)
    for key, value in c.items():
        if key in ("pad", "kernel_size", "stride"):
            out[key] = [value]
        elif key not in ("hole", "hole_h", "hole_w"):
            out[key] = value.copy() if isinstance(value, Message) else value
    has_h, has_w = c.has("hole_h"), c.has("hole_w")
    if c.has("hole") and (has_h or has_w):
        raise _error(f"layer '{layer}': give either hole or hole_h and hole_w, not both",
                     c.where, path)
    if has_h != has_w:
        raise _error(f"layer '{layer}': hole_h and hole_w must be given together",
                     c.where, path)
    if c.has("hole"):
        out["dilation"] = [c["hole"]]
    elif has_h:
        out["dilation"] = [c["hole_h"], c["hole_w"]]
    return out


def net_to_text(spec):
    """V2 prototxt of a NetSpec (normalized schema: DeepLab layers keep their *_param names)."""
    net = Message("NetParameter")
    if spec.name:
        net["name"] = spec.name
    if spec.force_backward:
        net["force_backward"] = True
    if spec.state is not None:
        net["state"] = spec.state
    net["layer"] = [layer.message for layer in spec.layers]
    return to_text(net, "normalized")
