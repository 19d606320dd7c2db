"""Protobuf binary codec (proto2 wire format), written from the wire-format spec.

Decodes bytes into ``Message`` trees and encodes them back, driven by a ``Schema`` (field tables
from ``schema.py``); no protoc, no generated code, no size limit short of memory.

Wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit; groups (3/4) are
skipped as unknown data.  Readers accept packed and unpacked encodings of every repeated scalar
(real Caffe files use both).  Every length is checked against the bytes that remain, so corrupt
input raises ``WireError`` with the byte offset and the field path
(``NetParameter.layer[3].blobs[0].data``): never an IndexError, a hang or a huge allocation.

Big float runs (``BlobProto.data`` and friends, see ``ARRAY_FIELDS``) become numpy arrays built
with ``numpy.frombuffer`` (one copy per blob, no per-element Python work), so a 550 MB VGG-16
caffemodel decodes in about the time it takes to copy it.
"""
import struct

import numpy as np

from ..errors import CaffeError, WireError
from .message import Message
from .wire_encode import Encoder, encode, messages_equal, _varint_bytes  # noqa: F401
from .wire_types import (_FIXED_DTYPE, _MASK64, _NATIVE, _STRUCT, _WIRE_OF, EGROUP, I32, I64, LEN,
                         SGROUP, VARINT)

_MAX_FIELD = (1 << 29) - 1
_MAX_DEPTH = 64   # Caffe's schema nests 5 deep; deeper means corruption
# A decoded message costs some hundred bytes of memory and can take 2 bytes of input: beyond
# MESSAGES_FREE messages, a buffer may hold one per BYTES_PER_MESSAGE bytes (real files hold
# far fewer), so the decoded tree stays within a small multiple of the input.
MESSAGES_FREE = 100_000
BYTES_PER_MESSAGE = 64


def message_budget(nbytes):
    """How many messages ``nbytes`` of input may decode to."""
    return MESSAGES_FREE + nbytes // BYTES_PER_MESSAGE


def too_many_messages(offset, path):
    return _fail(f"more than {MESSAGES_FREE} messages and more than one per "
                 f"{BYTES_PER_MESSAGE} bytes: not a real file (a flood of empty messages?)",
                 offset, path)

# Repeated float fields decoded as numpy arrays (every other repeated field is a list).
ARRAY_FIELDS = frozenset({("BlobProto", "data"), ("BlobProto", "diff"),
                          ("BlobProto", "double_data"), ("BlobProto", "double_diff"),
                          ("Datum", "float_data")})


def _fail(reason, offset, path, field=None):
    where = path + ("." + field if field else "")
    err = WireError(f"{where}: {reason}" if where else reason, offset)
    err.field_path = where
    return err


def _varint(buf, pos, end, path):
    """(value, new_pos): an unsigned varint of at most 10 bytes starting at ``pos``."""
    if pos >= end:
        raise _fail("truncated varint (no bytes left)", pos, path)
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    start, result, shift = pos, b & 0x7F, 7
    pos += 1
    while True:
        if pos >= end:
            raise _fail("truncated varint", start, path)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise _fail("varint longer than 10 bytes", start, path)


def _key(buf, pos, end, path):
    """(field number, wire type, position after the key) of the field key at ``pos``."""
    key, after = _varint(buf, pos, end, path)
    number = key >> 3
    if number == 0 or number > _MAX_FIELD:
        raise _fail(f"invalid field number {number}", pos, path)
    return number, key & 7, after


def _signed(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _scalar_from_varint(ftype, v):
    if ftype == "int32" or ftype == "enum":
        return _signed(v, 32)      # protobuf truncates an int32 varint to its low 32 bits
    if ftype == "int64":
        return _signed(v, 64)
    if ftype == "uint32":
        return v & 0xFFFFFFFF
    if ftype == "uint64":
        return v
    if ftype == "bool":
        return v != 0
    if ftype == "sint32":
        v &= 0xFFFFFFFF
        return (v >> 1) ^ -(v & 1)
    if ftype == "sint64":
        return (v >> 1) ^ -(v & 1)
    raise AssertionError(ftype)


def skip_field(buf, pos, end, wire_type, number, path=""):
    """Position after the value of a field whose key was just read (groups skipped whole)."""
    if wire_type == VARINT:
        return _varint(buf, pos, end, path)[1]
    if wire_type in (I64, I32):
        n = 8 if wire_type == I64 else 4
        if end - pos < n:
            raise _fail(f"field {number}: {n}-byte value truncated ({end - pos} bytes left)",
                        pos, path)
        return pos + n
    if wire_type == LEN:
        n, p = _varint(buf, pos, end, path)
        if n > end - p:
            raise _fail(f"field {number}: length {n} exceeds the {end - p} bytes left", pos, path)
        return p + n
    if wire_type == SGROUP:
        # Iterative, so a file of nested start-group keys cannot blow the Python stack.
        open_groups = [number]
        while open_groups:
            key_at = pos
            key, pos = _varint(buf, pos, end, path)
            num, wt = key >> 3, key & 7
            if wt == EGROUP:
                if num != open_groups[-1]:
                    raise _fail(f"end-group {num} does not close group {open_groups[-1]}",
                                key_at, path)
                open_groups.pop()
            elif wt == SGROUP:
                if len(open_groups) >= _MAX_DEPTH:
                    raise _fail("groups nested too deep", key_at, path)
                open_groups.append(num)
            else:
                pos = skip_field(buf, pos, end, wt, num, path)
        return pos
    if wire_type == EGROUP:
        raise _fail(f"unexpected end-group for field {number}", pos, path)
    raise _fail(f"field {number}: invalid wire type {wire_type}", pos, path)


def iter_fields(buf, start=0, end=None, path=""):
    """Schema-less scan: yields (number, wire_type, value, key_offset).

    value is the integer for varint/fixed fields and the (start, end) byte range of the payload
    for length-delimited fields and groups.  Used to look at a file before choosing a schema.
    """
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        key_at = pos
        number, wt, pos = _key(buf, pos, end, path)
        if wt == VARINT:
            value, pos = _varint(buf, pos, end, path)
        elif wt == LEN:
            n, p = _varint(buf, pos, end, path)
            if n > end - p:
                raise _fail(f"field {number}: length {n} exceeds the {end - p} bytes left",
                            pos, path)
            value, pos = (p, p + n), p + n
        elif wt in (I32, I64):
            p = skip_field(buf, pos, end, wt, number, path)
            value, pos = int.from_bytes(buf[pos:p], "little"), p
        else:
            p = skip_field(buf, pos, end, wt, number, path)
            value, pos = (pos, p), p
        yield number, wt, value, key_at


class Decoder:
    """Decodes messages of one ``Schema``.

    ``unknown_count`` counts fields skipped because the schema does not know them (or they came
    with a wire type their declaration does not allow); the first ``keep_unknown`` of them are
    listed in ``unknown`` as (field_path, number, wire_type, offset).
    """

    def __init__(self, schema, array_fields=ARRAY_FIELDS, keep_unknown=100, copy_arrays=True):
        self.schema = schema
        # False: packed float arrays stay views of the input (only for a buffer nobody else
        # writes to, as decode_file's own copy of a file).
        self.copy_arrays = copy_arrays
        self.array_fields = array_fields
        self.keep_unknown = keep_unknown
        self.unknown_count = 0
        self.unknown = []
        self._enum_names = {name: {v: k for k, v in values.items()}
                            for name, values in schema.enums.items()}

    def decode(self, buf, type_name, start=0, end=None, path=None):
        """Decode ``buf[start:end]`` (bytes, bytearray, memoryview or mmap) as ``type_name``."""
        if not isinstance(buf, memoryview):
            buf = memoryview(buf)
        if buf.format != "B" or buf.ndim != 1:
            buf = buf.cast("B")
        end = len(buf) if end is None else end
        if not 0 <= start <= end <= len(buf):
            raise CaffeError(f"bad byte range {start}:{end} for a buffer of {len(buf)} bytes")
        self._messages_left = message_budget(end - start)
        return self._message(buf, start, end, self._mdef(type_name), path or type_name, 0)

    def _mdef(self, name):
        mdef = self.schema.messages.get(name)
        if mdef is None:
            raise CaffeError(f"schema '{self.schema.name}' has no message type '{name}'")
        return mdef

    def _unknown(self, path, number, wt, offset):
        self.unknown_count += 1
        if len(self.unknown) < self.keep_unknown:
            self.unknown.append((path, number, wt, offset))

    def _message(self, buf, pos, end, mdef, path, depth):
        if depth > _MAX_DEPTH:
            raise _fail("messages nested too deep", pos, path)
        self._messages_left -= 1
        if self._messages_left < 0:
            raise too_many_messages(pos, path)
        msg = Message(mdef.name)
        fields = msg.fields
        by_number = mdef.by_number
        chunks = {}     # array field name -> list of numpy pieces, joined at the end
        while pos < end:
            key_at = pos
            number, wt, pos = _key(buf, pos, end, path)
            fd = by_number.get(number)
            want = _WIRE_OF.get(fd.type) if fd is not None else None
            if fd is None or (wt != want and not (wt == LEN and fd.repeated and
                                                  want in (VARINT, I32, I64))):
                pos = skip_field(buf, pos, end, wt, number, path)
                self._unknown(path, number, wt, key_at)
                continue
            name = fd.name
            if (mdef.name, name) in self.array_fields:
                pos = self._array_piece(buf, key_at, pos, end, wt, fd, path, chunks)
                continue
            if wt == LEN and want != LEN:
                values, pos = self._packed(buf, pos, end, fd, path)
                fields.setdefault(name, []).extend(values)
                continue
            if want == VARINT:
                raw, pos = _varint(buf, pos, end, path)
                value = _scalar_from_varint(fd.type, raw)
                if fd.type == "enum":
                    value = self._enum_names.get(fd.type_name, {}).get(value, value)
            elif want == LEN:
                n, p = _varint(buf, pos, end, path)
                if n > end - p:
                    raise _fail(f"length {n} exceeds the {end - p} bytes left", pos, path, name)
                pos = p + n
                if fd.type == "message":
                    if fd.repeated:
                        sub = f"{path}.{name}[{len(fields.get(name, ()))}]"
                    else:
                        sub = f"{path}.{name}"
                    value = self._message(buf, p, pos, self._mdef(fd.type_name), sub, depth + 1)
                    if not fd.repeated and name in fields:
                        _merge(fields[name], value)   # proto2: a repeated singular message merges
                        continue
                elif fd.type == "string":
                    value = bytes(buf[p:pos]).decode("utf-8", "surrogateescape")
                else:
                    value = bytes(buf[p:pos])
            else:
                n = 4 if want == I32 else 8
                if end - pos < n:
                    raise _fail(f"{n}-byte value truncated", pos, path, name)
                value = struct.unpack_from(_STRUCT[fd.type], buf, pos)[0]
                pos += n
            if fd.repeated:
                fields.setdefault(name, []).append(value)
            else:
                fields[name] = value
        for name, pieces in chunks.items():
            fields[name] = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        return msg

    def _packed(self, buf, pos, end, fd, path):
        n, p = _varint(buf, pos, end, path)
        if n > end - p:
            raise _fail(f"packed length {n} exceeds the {end - p} bytes left", pos, path, fd.name)
        stop = p + n
        dtype = _FIXED_DTYPE.get(fd.type)
        if dtype is not None:
            width = 4 if dtype[-1] == "4" else 8
            if n % width:
                raise _fail(f"packed length {n} is not a multiple of {width}", pos, path, fd.name)
            return np.frombuffer(buf, dtype, n // width, p).tolist(), stop
        values = []
        while p < stop:
            raw, p = _varint(buf, p, stop, f"{path}.{fd.name}")
            values.append(_scalar_from_varint(fd.type, raw))
        if fd.type == "enum":
            names = self._enum_names.get(fd.type_name, {})
            values = [names.get(v, v) for v in values]
        return values, stop

    def _array_piece(self, buf, key_at, pos, end, wt, fd, path, chunks):
        """One packed run, or a run of unpacked entries, of a float array field."""
        dtype = _FIXED_DTYPE[fd.type]
        width = 4 if dtype[-1] == "4" else 8
        if wt == LEN:
            n, p = _varint(buf, pos, end, path)
            if n > end - p:
                raise _fail(f"packed length {n} exceeds the {end - p} bytes left", pos, path,
                            fd.name)
            if n % width:
                raise _fail(f"packed length {n} is not a multiple of {width}", pos, path, fd.name)
            piece = np.frombuffer(buf, dtype, n // width, p).astype(_NATIVE[fd.type],
                                                                  copy=self.copy_arrays)
            chunks.setdefault(fd.name, []).append(piece)
            return p + n
        # Unpacked: records of (same key bytes + value).  Find the run length with numpy,
        # doubling the window, so a huge unpacked blob costs no per-element Python either.
        key = bytes(buf[key_at:pos])
        stride = len(key) + width
        total = (end - key_at) // stride
        if total == 0:
            raise _fail(f"{width}-byte value truncated", pos, path, fd.name)
        keyrow = np.frombuffer(key, np.uint8)
        count, window = 0, 64
        while count < total:
            take = min(window, total - count)
            recs = np.frombuffer(buf, np.uint8, take * stride, key_at + count * stride)
            recs = recs.reshape(take, stride)
            bad = np.flatnonzero((recs[:, :len(key)] != keyrow).any(axis=1))
            if bad.size:
                count += int(bad[0])
                break
            count += take
            window *= 2
        recs = np.frombuffer(buf, np.uint8, count * stride, key_at).reshape(count, stride)
        piece = np.ascontiguousarray(recs[:, len(key):]).view(dtype).reshape(count)
        chunks.setdefault(fd.name, []).append(piece.astype(_NATIVE[fd.type]))
        return key_at + count * stride


def _merge(dst, src):
    for name, value in src.fields.items():
        old = dst.fields.get(name)
        if isinstance(old, Message) and isinstance(value, Message):
            _merge(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            old.extend(value)
        else:
            dst.fields[name] = value


def decode(buf, schema, type_name, **kwargs):
    """Decode a whole buffer as one ``type_name`` message."""
    return Decoder(schema, **kwargs).decode(buf, type_name)

