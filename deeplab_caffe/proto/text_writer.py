"""Protobuf text format (prototxt) writer: ``to_text(message, schema)``; ``text_format.parse``
reads its output back.  Floats are written as the shortest text that gives back the same float32,
so dumps of decoded .caffemodel files stay readable."""
import math
import struct

from ..errors import PrototxtError
from .schema import get_schema

_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _quote(value):
    """A quoted string literal: printable text kept (UTF-8 too), other bytes as octal."""
    out = []
    if isinstance(value, str):
        for c in value:
            if c in _ESC:
                out.append(_ESC[c])
            elif c < " " or c == "\x7f":
                out.append(f"\\{ord(c):03o}")
            else:
                out.append(c)
    else:
        for b in value:
            c = chr(b)
            if c in _ESC:
                out.append(_ESC[c])
            elif 0x20 <= b < 0x7F:
                out.append(c)
            else:
                out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _format_float(v, single):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if single and abs(v) <= 3.4e38:
        # Shortest text that gives back the same float32, so caffemodel dumps stay readable.
        f32 = struct.unpack("<f", struct.pack("<f", v))[0]
        for p in range(6, 10):
            s = "%.*g" % (p, v)
            if struct.unpack("<f", struct.pack("<f", float(s)))[0] == f32:
                return s
    return repr(v)


def _format_scalar(fdef, v, schema):
    t = fdef.type
    if t in ("string", "bytes"):
        return _quote(v)
    if t == "bool":
        return "true" if v else "false"
    if t in ("float", "double"):
        return _format_float(v, t == "float")
    if t == "enum":
        if isinstance(v, int):
            name = schema.enum_name(fdef.type_name, v)
            if name is None:
                raise PrototxtError(f"cannot write {v} for enum {fdef.type_name}", "<to_text>")
            return name
        return str(v)
    return str(int(v))


def _write(msg, schema, indent, out):
    mdef = schema.messages.get(msg.type_name)
    if mdef is None:
        raise PrototxtError(f"schema {schema.name} has no message {msg.type_name}", "<to_text>")
    pad = "  " * indent
    for name, value in msg.items():
        fdef = mdef.by_name.get(name)
        if fdef is None:
            raise PrototxtError(f"cannot write unknown field '{name}' of {mdef.name} "
                                f"(schema {schema.name})", "<to_text>")
        for v in (value if isinstance(value, list) else [value]):
            if v is None:
                continue
            if fdef.type == "message":
                out.append(f"{pad}{name} {{\n")
                _write(v, schema, indent + 1, out)
                out.append(f"{pad}}}\n")
            else:
                out.append(f"{pad}{name}: {_format_scalar(fdef, v, schema)}\n")


def to_text(message, schema):
    """Prototxt text for ``message`` (fields in their stored order); ``parse`` reads it back."""
    out = []
    _write(message, get_schema(schema), 0, out)
    return "".join(out)
