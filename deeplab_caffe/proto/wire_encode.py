"""Encoder half of the wire codec (see ``wire.py``): Message trees -> protobuf bytes.

Fields go out in field-number order, as protobuf's C++ serializer (and so Caffe) writes them,
which makes a decoded Caffe file re-encode byte for byte.  Packed fields are written packed;
float arrays go out as one view of their numpy buffer, never element by element.
"""
import struct

import numpy as np

from ..errors import CaffeError
from .message import Message
from .wire_types import _FIXED_DTYPE, _MASK64, _STRUCT, _WIRE_OF, I32, I64, LEN, VARINT

# Ranges of the varint types (enums are int32); "bool" takes any integer as protobuf does.
_RANGES = {"int32": (-2**31, 2**31 - 1), "sint32": (-2**31, 2**31 - 1),
           "int64": (-2**63, 2**63 - 1), "sint64": (-2**63, 2**63 - 1),
           "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1), "bool": (-2**63, 2**64 - 1)}


def _varint_bytes(v):
    v &= _MASK64      # negative int32/int64 become 10-byte two's-complement varints
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


class Encoder:
    """Encodes ``Message`` trees of one ``Schema`` into a list of buffers (no big joins: a
    blob's data goes out as a view of its numpy array)."""

    def __init__(self, schema):
        self.schema = schema
        self._sorted = {}

    def encode(self, msg, type_name=None):
        """bytes of the message."""
        chunks, _ = self.chunks(msg, type_name)
        return b"".join(chunks)

    def write(self, f, msg, type_name=None):
        """Write the message to the open binary file ``f``; returns the byte count."""
        chunks, total = self.chunks(msg, type_name)
        for c in chunks:
            f.write(c)
        return total

    def chunks(self, msg, type_name=None, path=None):
        name = type_name or msg.type_name
        mdef = self.schema.messages.get(name)
        if mdef is None:
            raise CaffeError(f"schema '{self.schema.name}' has no message type '{name}'")
        path = path or name
        out, total = [], 0
        known = mdef.by_name
        for fname in msg.fields:
            if fname not in known:
                raise CaffeError(f"{path}: field '{fname}' is not in {name} "
                                 f"(schema '{self.schema.name}')")
        order = self._sorted.get(name)
        if order is None:
            order = self._sorted[name] = sorted(mdef.fields, key=lambda f: f.number)
        for fd in order:
            value = msg.fields.get(fd.name)
            if value is None:
                continue
            fpath = f"{path}.{fd.name}"
            if fd.repeated:
                if isinstance(value, (list, tuple, np.ndarray)):
                    values = value
                else:
                    values = [value]
                if len(values) == 0:
                    continue
                if fd.packed and _WIRE_OF[fd.type] != LEN:
                    payload = self._packed_payload(fd, values, fpath)
                    head = _varint_bytes(fd.number << 3 | LEN) + _varint_bytes(len(payload))
                    out += [head, payload]
                    total += len(head) + len(payload)
                    continue
                for i, v in enumerate(values):
                    total += self._one(out, fd, v, f"{fpath}[{i}]")
            else:
                if isinstance(value, list):
                    if len(value) != 1:
                        raise CaffeError(f"{fpath}: singular field holds {len(value)} values")
                    value = value[0]
                total += self._one(out, fd, value, fpath)
        return out, total

    def _packed_payload(self, fd, values, path):
        dtype = _FIXED_DTYPE.get(fd.type)
        try:
            if dtype is not None:
                arr = np.ascontiguousarray(values, dtype=dtype).reshape(-1)
                return memoryview(arr).cast("B")
            return b"".join(_varint_bytes(self._int(fd, v, path)) for v in values)
        except (TypeError, ValueError, OverflowError) as e:
            if isinstance(e, CaffeError):
                raise
            raise CaffeError(f"{path}: cannot encode as packed {fd.type}: {e}") from None

    def _int(self, fd, v, path):
        if fd.type == "enum":
            if isinstance(v, str):
                table = self.schema.enums.get(fd.type_name, {})
                if v not in table:
                    raise CaffeError(f"{path}: '{v}' is not a value of enum {fd.type_name}")
                return table[v]
        if isinstance(v, (bool, np.bool_)):
            return int(v)
        if not isinstance(v, (int, np.integer)):
            raise CaffeError(f"{path}: expected an integer for {fd.type}, got {v!r}")
        v = int(v)
        lo, hi = _RANGES.get(fd.type, _RANGES["int32"])
        if not lo <= v <= hi:
            raise CaffeError(f"{path}: {v} is out of range for {fd.type} [{lo}, {hi}]")
        if fd.type == "sint32" or fd.type == "sint64":
            return (v << 1) ^ (v >> 63)
        return v

    def _one(self, out, fd, v, path):
        wt = _WIRE_OF[fd.type]
        head = _varint_bytes(fd.number << 3 | wt)
        if wt == VARINT:
            body = _varint_bytes(self._int(fd, v, path))
        elif wt in (I32, I64):
            try:
                body = struct.pack(_STRUCT[fd.type], v)
            except (struct.error, OverflowError, TypeError) as e:
                raise CaffeError(f"{path}: cannot encode {v!r} as {fd.type}: {e}") from None
        elif fd.type == "message":
            if not isinstance(v, Message):
                raise CaffeError(f"{path}: expected a {fd.type_name} message, got {v!r}")
            sub, n = self.chunks(v, fd.type_name, path)
            head += _varint_bytes(n)
            out.append(head)
            out.extend(sub)
            return len(head) + n
        else:
            if fd.type == "string":
                if not isinstance(v, str):
                    raise CaffeError(f"{path}: expected a string, got {v!r}")
                body = v.encode("utf-8", "surrogateescape")
            else:
                if not isinstance(v, (bytes, bytearray)):
                    raise CaffeError(f"{path}: expected bytes, got {v!r}")
                body = bytes(v)
            head += _varint_bytes(len(body))
        out += [head, body]
        return len(head) + len(body)


def encode(msg, schema, type_name=None):
    """bytes of ``msg`` encoded with ``schema``."""
    return Encoder(schema).encode(msg, type_name)


def messages_equal(a, b):
    """Deep equality of Message trees whose values may include numpy arrays (exact, dtype and
    shape included).  ``Message.__eq__`` cannot compare arrays."""
    if isinstance(a, Message) or isinstance(b, Message):
        if not (isinstance(a, Message) and isinstance(b, Message)):
            return False
        if a.type_name != b.type_name or set(a.fields) != set(b.fields):
            return False
        return all(messages_equal(a.fields[k], b.fields[k]) for k in a.fields)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True)))
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(messages_equal(x, y) for x, y in zip(a, b)))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b
