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


class _TableCompiler:
    """Compiles one table (the notation above) into a Schema: one method per kind of line, then
    ``schema()`` resolves type names.  Fields are kept as raw tuples (number, name, type or
    type name, repeated, packed, default) until every message and enum is known."""

    def __init__(self, name, bases):
        self.name, self.bases = name, bases
        self.raw_msgs, self.raw_enums = {}, {}
        self.current = self.last_enum = None    # the message / enum later lines continue

    def line(self, words):
        if words[0] == "include":
            self.include(self.bases[words[1]])
        elif words[0] == "drop":
            for w in words[1:]:
                if self.raw_msgs.pop(w, None) is None and self.raw_enums.pop(w, None) is None:
                    raise KeyError(w)
        elif words[0] in ("message", "enum"):
            self.declaration(words[0], words[1], words[2:])
        elif "=" in words[0]:             # continuation of the last enum line
            for w in words:
                k, v = w.split("=")
                self.raw_enums[self.last_enum][k] = int(v)
        elif words[0] == "-":             # continuation of a message's drop list
            fields = self.raw_msgs[self.current]
            fields[:] = [f for f in fields if f[1] not in words[1:]]
        else:
            self.field(words)

    def include(self, base):
        for m in base.messages.values():
            self.raw_msgs[m.name] = [(f.number, f.name, f.type_name or f.type, f.repeated,
                                      f.packed, f.default) for f in m.fields]
        self.raw_enums.update({k: dict(v) for k, v in base.enums.items()})

    def declaration(self, kind, tname, rest):
        base = src_name = None
        if rest and rest[0] == "=":
            base, src_name, rest = self.bases[rest[1]], rest[2], rest[3:]
        drop = []
        if rest and rest[0] == "-":
            drop = [w for w in rest[1:] if "=" not in w]
            rest = [w for w in rest[1:] if "=" in w]
        if kind == "message":
            self.raw_msgs[tname] = self.copied_fields(base, src_name, tname, drop)
            self.current = tname
            return
        values = dict(base.enums[src_name]) if base is not None else {}
        for d in drop:
            del values[d]
        for w in rest:
            k, v = w.split("=")
            values[k] = int(v)
        self.raw_enums[tname] = values
        self.current, self.last_enum = None, tname

    @staticmethod
    def copied_fields(base, src_name, tname, drop):
        if base is None:
            return []
        fields = []
        for f in base.messages[src_name].fields:
            if f.name in drop:
                continue
            ref = f.type_name or f.type
            if ref.startswith(src_name + "."):    # nested enum follows a rename
                ref = tname + ref[len(src_name):]
            fields.append((f.number, f.name, ref, f.repeated, f.packed, f.default))
        return fields

    def field(self, words):
        number, fname, ftype = int(words[0]), words[1], words[2]
        rep, packed = ftype.endswith(("*", "+")), ftype.endswith("+")
        ftype = ftype.rstrip("*+")
        default = _Raw(words[3][1:]) if len(words) > 3 else None
        fields = self.raw_msgs[self.current]
        fields[:] = [f for f in fields if f[1] != fname]
        fields.append((number, fname, ftype, rep, packed, default))

    def resolve(self, owner, tname):
        if tname in SCALAR_TYPES:
            return tname, None
        for cand in (f"{owner}.{tname}", tname):
            if cand in self.raw_enums:
                return "enum", cand
            if cand in self.raw_msgs:
                return "message", cand
        raise RuntimeError(f"schema table {self.name}: {owner} refers to unknown type {tname}")

    def schema(self):
        messages = {}
        for mname, raw in self.raw_msgs.items():
            defs = []
            for number, fname, tname, rep, packed, default in sorted(raw):
                ftype, type_name = self.resolve(mname, tname)
                if isinstance(default, _Raw):
                    default = _literal(default, ftype)
                defs.append(FieldDef(number, fname, ftype, rep, packed, default, type_name))
            messages[mname] = MessageDef(mname, defs)
        return Schema(self.name, messages, self.raw_enums)


def _compile(name, source, bases):
    """The Schema of table ``source``; ``bases``: the schemas it may include or copy from."""
    compiler = _TableCompiler(name, bases)
    for lineno, line in enumerate(source.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            compiler.line(line.split())
        except (KeyError, IndexError, ValueError) as e:
            raise RuntimeError(f"schema table {name} line {lineno}: {line!r}: {e!r}") from None
    return compiler.schema()


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
