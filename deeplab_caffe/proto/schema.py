"""Field tables (data) for every Caffe message the project reads or writes.

Contract:
  FieldDef(number, name, type, repeated=False, packed=False, default=None, type_name=None)
    type is one of: int32 int64 uint32 uint64 sint32 sint64 bool float double string bytes
    fixed32 fixed64 enum message; type_name names the message or enum type.
  MessageDef(name, fields)  with .by_name and .by_number dicts
  Schema(name, messages, enums)   enums: {enum type name: {value name: number}}
  get_schema(name) -> Schema, name in:
    "bvlc"        BVLC Caffe's caffe.proto (V2 ``layer = 100`` and the legacy V1 ``layers = 2``).
    "deeplab_v1"  deeplab-public v1's caffe.proto: V1 only, its own LayerType values 39..56
                  and LayerParameter fields 42..59 / 1003, ``hole`` in ConvolutionParameter.
                  Its numbers clash with BVLC's, so the two are never mixed.
    "normalized"  BVLC plus DeepLab v1's layer parameters (interp_param, softmaxloss_param, ...) on
                  the V2 LayerParameter: the schema of ``LayerSpec.message`` and of V2 text files.
                  DeepLab fields that clash with BVLC numbers get private numbers (10000 + the DL1
                  number); this schema is for text only and never decodes a binary file.

The tables themselves are text (``_tables_bvlc.py``, ``_tables_deeplab.py``) in a small
proto-like notation compiled here; see ``_compile`` for the notation.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

SCALAR_TYPES = frozenset(
    "int32 int64 uint32 uint64 sint32 sint64 bool float double string bytes "
    "fixed32 fixed64 sfixed32 sfixed64".split())
INT_RANGES = {
    "int32": (-2**31, 2**31 - 1), "sint32": (-2**31, 2**31 - 1), "sfixed32": (-2**31, 2**31 - 1),
    "int64": (-2**63, 2**63 - 1), "sint64": (-2**63, 2**63 - 1), "sfixed64": (-2**63, 2**63 - 1),
    "uint32": (0, 2**32 - 1), "fixed32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1), "fixed64": (0, 2**64 - 1),
}


@dataclass(frozen=True)
class FieldDef:
    number: int
    name: str
    type: str
    repeated: bool = False
    packed: bool = False
    default: object = None
    type_name: Optional[str] = None


@dataclass
class MessageDef:
    name: str
    fields: List[FieldDef]
    by_name: Dict[str, FieldDef] = field(init=False)
    by_number: Dict[int, FieldDef] = field(init=False)

    def __post_init__(self):
        self.by_name = {f.name: f for f in self.fields}
        self.by_number = {f.number: f for f in self.fields}
        if len(self.by_name) != len(self.fields) or len(self.by_number) != len(self.fields):
            raise RuntimeError(f"schema table error: duplicate field in {self.name}")


@dataclass
class Schema:
    name: str
    messages: Dict[str, MessageDef]
    enums: Dict[str, Dict[str, int]]

    def message(self, name):
        return self.messages[name]

    def enum_name(self, enum_type, number):
        """The name of ``number`` in ``enum_type``, or None."""
        for k, v in self.enums[enum_type].items():
            if v == number:
                return k
        return None


# -- the table notation -----------------------------------------------------------------------
#
#   message Name                     a new message; field lines follow
#   message Name = schema Base [- f1 f2 ...]
#                                    a copy of another schema's message minus fields f1 f2 ...;
#                                    following field lines add fields or replace same-named ones
#   <number> <name> <type>[*|+] [=default]
#                                    * repeated, + repeated and [packed = true]; a type that is not
#                                    a scalar is an enum or message, looked up first nested in the
#                                    current message ("PoolMethod" -> "PoolingParameter.PoolMethod")
#   enum Name A=0 B=1 ...            an enum (qualified names for nested enums)
#   enum Name = schema Base [- A B] [C=7 ...]
#     D=8 E=9 ...                    (indented NAME=N words continue the last enum line)
#     - f3 f4                        (continues the last message line's drop list)
#   include schema                   start from every message and enum of another schema
#   drop Name ...                    remove messages / enums (after an include)
#   # ...                            comment
# Blank lines end nothing; a field line belongs to the last ``message`` line.

class _Raw(str):
    """A default still in table notation (copied defaults are already typed)."""


def _literal(text, ftype):
    if text.startswith('"'):
        return text[1:-1]
    if ftype == "bool":
        return text == "true"
    if ftype in ("float", "double"):
        return float(text)
    if ftype in SCALAR_TYPES:
        return int(text)
    return text  # enum value name


def _compile(name, source, bases):
    raw_msgs, raw_enums = {}, {}      # name -> list of (number, fname, tname, rep, packed, default)
    current = last_enum = None
    for lineno, line in enumerate(source.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        try:
            if words[0] == "include":
                base = bases[words[1]]
                for m in base.messages.values():
                    raw_msgs[m.name] = [(f.number, f.name, f.type_name or f.type, f.repeated,
                                         f.packed, f.default) for f in m.fields]
                raw_enums.update({k: dict(v) for k, v in base.enums.items()})
                continue
            if words[0] == "drop":
                for w in words[1:]:
                    if raw_msgs.pop(w, None) is None and raw_enums.pop(w, None) is None:
                        raise KeyError(w)
                continue
            if words[0] in ("message", "enum"):
                kind, tname, rest = words[0], words[1], words[2:]
                base = None
                if rest and rest[0] == "=":
                    base = bases[rest[1]]
                    src_name, rest = rest[2], rest[3:]
                drop = []
                if rest and rest[0] == "-":
                    drop = [w for w in rest[1:] if "=" not in w]
                    rest = [w for w in rest[1:] if "=" in w]
                if kind == "message":
                    fields = []
                    if base is not None:
                        for f in base.messages[src_name].fields:
                            if f.name in drop:
                                continue
                            ref = f.type_name or f.type
                            if ref.startswith(src_name + "."):    # nested enum follows a rename
                                ref = tname + ref[len(src_name):]
                            fields.append((f.number, f.name, ref, f.repeated, f.packed,
                                           f.default))
                    raw_msgs[tname] = fields
                    current = tname
                else:
                    values = dict(base.enums[src_name]) if base is not None else {}
                    for d in drop:
                        del values[d]
                    for w in rest:
                        k, v = w.split("=")
                        values[k] = int(v)
                    raw_enums[tname] = values
                    current, last_enum = None, tname
                continue
            if "=" in words[0]:             # continuation of the last enum line
                for w in words:
                    k, v = w.split("=")
                    raw_enums[last_enum][k] = int(v)
                continue
            if words[0] == "-":             # continuation of a message's drop list
                raw_msgs[current][:] = [f for f in raw_msgs[current] if f[1] not in words[1:]]
                continue
            number, fname, ftype = int(words[0]), words[1], words[2]
            rep, packed = ftype.endswith(("*", "+")), ftype.endswith("+")
            ftype = ftype.rstrip("*+")
            default = _Raw(words[3][1:]) if len(words) > 3 else None
            fields = raw_msgs[current]
            fields[:] = [f for f in fields if f[1] != fname]
            fields.append((number, fname, ftype, rep, packed, default))
        except (KeyError, IndexError, ValueError) as e:
            raise RuntimeError(f"schema table {name} line {lineno}: {line!r}: {e!r}") from None

    def resolve(owner, tname):
        if tname in SCALAR_TYPES:
            return tname, None
        for cand in (f"{owner}.{tname}", tname):
            if cand in raw_enums:
                return "enum", cand
            if cand in raw_msgs:
                return "message", cand
        raise RuntimeError(f"schema table {name}: {owner} refers to unknown type {tname}")

    messages = {}
    for mname, raw in raw_msgs.items():
        defs = []
        for number, fname, tname, rep, packed, default in sorted(raw):
            ftype, type_name = resolve(mname, tname)
            if isinstance(default, _Raw):
                default = _literal(default, ftype)
            defs.append(FieldDef(number, fname, ftype, rep, packed, default, type_name))
        messages[mname] = MessageDef(mname, defs)
    return Schema(name, messages, raw_enums)


_CACHE = {}


def get_schema(name):
    """The named Schema ("bvlc", "deeplab_v1" or "normalized"); a Schema passes through."""
    if isinstance(name, Schema):
        return name
    if name not in _CACHE:
        from . import _tables_bvlc, _tables_deeplab
        if not _CACHE:
            bvlc = _compile("bvlc", _tables_bvlc.BVLC, {})
            dl1 = _compile("deeplab_v1", _tables_deeplab.DEEPLAB_V1, {"bvlc": bvlc})
            norm = _compile("normalized", _tables_deeplab.NORMALIZED,
                            {"bvlc": bvlc, "deeplab_v1": dl1})
            _CACHE.update(bvlc=bvlc, deeplab_v1=dl1, normalized=norm)
        if name not in _CACHE:
            raise ValueError(f"unknown schema {name!r} (known: {', '.join(sorted(_CACHE))})")
    return _CACHE[name]
