"""The protobuf wire codec against hand-made bytes from the wire-format spec, on a small local
schema (independent of the Caffe tables)."""
import random

import numpy as np
import pytest

from deeplab_caffe.errors import CaffeError, WireError
from deeplab_caffe.proto.message import Message
from deeplab_caffe.proto.schema import FieldDef as F, MessageDef, Schema
from deeplab_caffe.proto import wire

SCHEMA = Schema("test", {
    "Test": MessageDef("Test", [
        F(1, "a", "int32"), F(2, "b", "string"), F(3, "c", "message", type_name="Inner"),
        F(4, "d", "int32", repeated=True, packed=True), F(5, "e", "int64"),
        F(6, "u32", "uint32"), F(7, "u64", "uint64"), F(8, "s32", "sint32"),
        F(9, "s64", "sint64"), F(10, "flag", "bool"), F(11, "f", "float"), F(12, "g", "double"),
        F(13, "x32", "fixed32"), F(14, "x64", "fixed64"), F(15, "sx32", "sfixed32"),
        F(16, "sx64", "sfixed64"), F(17, "raw", "bytes"), F(18, "kind", "enum", type_name="Kind"),
        F(19, "kinds", "enum", repeated=True, type_name="Kind"),
        F(20, "fl", "float", repeated=True), F(21, "inners", "message", repeated=True,
                                              type_name="Inner"),
        F(22, "names", "string", repeated=True), F(23, "blob", "message", type_name="BlobProto"),
    ]),
    "Inner": MessageDef("Inner", [F(1, "x", "int32"), F(2, "y", "float", repeated=True)]),
    "BlobProto": MessageDef("BlobProto", [
        F(1, "num", "int32"), F(5, "data", "float", repeated=True, packed=True),
        F(8, "double_data", "double", repeated=True, packed=True)]),
}, {"Kind": {"ZERO": 0, "ONE": 1, "BIG": 1000}})


def dec(b, **kw):
    return wire.Decoder(SCHEMA, **kw).decode(b, "Test")


def enc(m):
    return wire.encode(m, SCHEMA)


def test_spec_examples():
    # The three examples of the protobuf encoding guide, byte for byte.
    assert enc(Message("Test", {"a": 150})) == bytes.fromhex("089601")
    assert enc(Message("Test", {"b": "testing"})) == bytes.fromhex("120774657374696e67")
    assert enc(Message("Test", {"d": [3, 270, 86942]})) == bytes.fromhex("2206038e029ea705")
    m = dec(bytes.fromhex("089601" "120774657374696e67" "2206038e029ea705"))
    assert m.fields == {"a": 150, "b": "testing", "d": [3, 270, 86942]}


def test_negative_int32_is_ten_bytes():
    b = enc(Message("Test", {"a": -1}))
    assert b == bytes.fromhex("08ffffffffffffffffff01")
    assert dec(b)["a"] == -1
    # protobuf truncates an int32 varint to 32 bits: 2**32 - 1 written as 5 bytes reads -1.
    assert dec(bytes.fromhex("08ffffffff0f"))["a"] == -1


@pytest.mark.parametrize("name,value,hexbytes", [
    ("s32", 0, "4000"), ("s32", -1, "4001"), ("s32", 1, "4002"), ("s32", -2, "4003"),
    ("s32", 2147483647, "40feffffff0f"), ("s32", -2147483648, "40ffffffff0f"),
    ("s64", -(1 << 63), "48ffffffffffffffffff01"),
    ("e", -(1 << 63), "2880808080808080808001"), ("u64", (1 << 64) - 1, "38ffffffffffffffffff01"),
    ("u32", 4294967295, "30ffffffff0f"), ("flag", True, "5001"),
    ("x32", 0xDEADBEEF, "6defbeadde"), ("sx32", -2, "7dfeffffff"),
    ("x64", 1, "71" + "0100000000000000"), ("sx64", -1, "8101" + "ff" * 8),
    ("f", 1.5, "5d0000c03f"), ("g", -2.0, "61" + "00000000000000c0"),
    ("raw", b"\x00\xff", "8a010200ff"), ("kind", "BIG", "9001e807"),
])
def test_scalar_types(name, value, hexbytes):
    b = bytes.fromhex(hexbytes)
    assert enc(Message("Test", {name: value})) == b
    assert dec(b).fields == {name: value}


def test_packed_and_unpacked_read_the_same():
    vals = [1, 300, 0, 70000]
    unpacked = b"".join(bytes([0x20]) + wire._varint_bytes(v) for v in vals)
    assert dec(unpacked)["d"] == vals
    fl = np.array([0.5, -1.25, 3.0], "<f4")
    packed_fl = bytes([0xA2, 0x01, 12]) + fl.tobytes()          # field 20, wire type 2
    unpacked_fl = b"".join(bytes([0xA5, 0x01]) + x.tobytes() for x in fl)
    assert dec(packed_fl)["fl"] == dec(unpacked_fl)["fl"] == [0.5, -1.25, 3.0]
    # Enum lists, both encodings; an enum number the schema lacks stays an int.
    assert dec(bytes.fromhex("9801019801e807"))["kinds"] == ["ONE", "BIG"]
    assert dec(bytes.fromhex("9a010301e807"))["kinds"] == ["ONE", "BIG"]
    assert dec(bytes.fromhex("900105"))["kind"] == 5


def _blob_bytes(pieces):
    """BlobProto field 23 holding data runs: ("p", arr) packed, ("u", arr) unpacked."""
    body = b""
    for kind, arr in pieces:
        arr = np.asarray(arr, "<f4")
        if kind == "p":
            body += b"\x2a" + wire._varint_bytes(arr.nbytes) + arr.tobytes()
        else:
            body += b"".join(b"\x2d" + x.tobytes() for x in arr)
    return b"\xba\x01" + wire._varint_bytes(len(body)) + body


def test_array_field_runs():
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(n).astype(np.float32) for n in (5, 300, 7))
    blob = dec(_blob_bytes([("p", a), ("u", b), ("p", c), ("u", a[:1])]))["blob"]
    data = blob["data"]
    assert isinstance(data, np.ndarray) and data.dtype == np.float32
    np.testing.assert_array_equal(data, np.concatenate([a, b, c, a[:1]]))
    assert data.flags.writeable and data.flags.c_contiguous
    # An unpacked run interrupted by another field, then resumed.
    body = b"".join(b"\x2d" + x.tobytes() for x in a[:3]) + b"\x08\x07" + \
        b"".join(b"\x2d" + x.tobytes() for x in a[3:])
    m = dec(b"\xba\x01" + wire._varint_bytes(len(body)) + body)["blob"]
    assert m["num"] == 7
    np.testing.assert_array_equal(m["data"], a)


def test_array_encoded_as_one_run():
    arr = np.arange(1000, dtype=np.float64) / 7
    m = Message("Test", {"blob": Message("BlobProto", {"data": arr})})
    b = enc(m)
    payload = arr.astype("<f4").tobytes()
    assert b == b"\xba\x01" + wire._varint_bytes(len(payload) + 3) + b"\x2a" + \
        wire._varint_bytes(len(payload)) + payload
    back = dec(b)["blob"]["data"]
    np.testing.assert_array_equal(back, arr.astype(np.float32))


def test_unknown_fields_skipped_and_counted():
    known = enc(Message("Test", {"a": 5, "b": "x"}))
    junk = (bytes.fromhex("c83e01")             # field 1001 varint
            + bytes.fromhex("d13e") + b"\0" * 8   # field 1002 fixed64
            + bytes.fromhex("da3e03616263")       # field 1003 bytes
            + bytes.fromhex("e53e") + b"\0" * 4   # field 1004 fixed32
            + bytes.fromhex("eb3e" "0801" "f33e" "1001" "f43e" "ec3e")  # nested groups 1005/1006
            + bytes.fromhex("1001"))              # field 2 (string) sent as a varint
    d = wire.Decoder(SCHEMA)
    m = d.decode(junk[:3] + known + junk[3:], "Test")
    assert m.fields == {"a": 5, "b": "x"}
    assert d.unknown_count == 6
    assert [u[1] for u in d.unknown] == [1001, 1002, 1003, 1004, 1005, 2]
    with pytest.raises(WireError, match="does not close"):
        dec(bytes.fromhex("eb3e" "f43e"))
    with pytest.raises(WireError, match="unexpected end-group"):
        dec(bytes.fromhex("ec3e"))
    for wt in (6, 7):
        with pytest.raises(WireError, match="invalid wire type"):
            dec(bytes([0x08 | wt, 0]))


def test_repeated_singular_message_merges():
    b = enc(Message("Test", {"c": Message("Inner", {"x": 1, "y": [1.0]})})) + \
        enc(Message("Test", {"c": Message("Inner", {"y": [2.0]})}))
    assert dec(b)["c"].fields == {"x": 1, "y": [1.0, 2.0]}


def test_errors_name_offset_and_path():
    # inners[1] holds a packed y whose length overruns the inner message (not the buffer).
    inner = b"\x12\x09" + b"\0" * 4
    b = enc(Message("Test", {"inners": [Message("Inner", {"x": 1})]}))
    b += b"\xaa\x01" + bytes([len(inner)]) + inner + b"\0" * 16
    with pytest.raises(WireError) as e:
        dec(b)
    assert e.value.offset == len(b) - 16 - 5 and "Test.inners[1].y: packed length 9" in str(e.value)
    assert e.value.field_path == "Test.inners[1].y"
    blob = _blob_bytes([("p", np.ones(4))])
    with pytest.raises(WireError) as e:
        dec(blob[:-1])
    assert "byte 2" in str(e.value)
    # A huge declared length is rejected before any allocation.
    with pytest.raises(WireError, match="exceeds"):
        huge = b"\x2a" + wire._varint_bytes(1 << 62)
        dec(b"\xba\x01" + bytes([len(huge)]) + huge)
    with pytest.raises(WireError, match="Test.blob.data: packed length 3 is not a multiple"):
        dec(b"\xba\x01\x05\x2a\x03abc")
    with pytest.raises(WireError, match="longer than 10 bytes"):
        dec(b"\x08" + b"\xff" * 11 + b"\x01")
    with pytest.raises(WireError, match="invalid field number 0"):
        dec(b"\x00\x01")


def _sample():
    rng = np.random.default_rng(1)
    return Message("Test", {
        "a": -7, "b": "naïve", "c": Message("Inner", {"x": 3, "y": [0.25, -4.0]}),
        "d": [1, 2, 1 << 20], "e": -(1 << 40), "s32": -5, "s64": 1 << 50, "flag": False,
        "f": 0.1, "g": 1e300, "raw": bytes(range(40)), "kind": "ONE", "kinds": ["ZERO", "BIG"],
        "fl": [1.0, 2.0], "names": ["p", "", "q"],
        "inners": [Message("Inner", {"x": i}) for i in range(3)],
        "blob": Message("BlobProto", {"num": 2,
                                      "data": rng.standard_normal(64).astype(np.float32),
                                      "double_data": rng.standard_normal(3)}),
    })


def test_round_trip():
    m = _sample()
    back = dec(enc(m))
    assert back["f"] == np.float32(0.1)  # float fields go through float32
    m["f"] = float(np.float32(0.1))
    assert wire.messages_equal(back, m)
    assert enc(back) == enc(m)


def test_encoder_rejects_bad_values():
    for fields, match in [({"nope": 1}, "not in Test"), ({"kind": "TWO"}, "not a value"),
                          ({"a": "x"}, "expected an integer"), ({"b": 3}, "expected a string"),
                          ({"c": 3}, "expected a Inner"), ({"x32": -1}, "cannot encode"),
                          ({"a": [1, 2]}, "singular field holds 2"),
                          ({"a": 2**31}, "out of range for int32"),
                          ({"u32": -1}, "out of range for uint32"),
                          ({"d": [1, 2**40]}, "out of range"), ({"f": 1e300}, "cannot encode")]:
        with pytest.raises(CaffeError, match=match):
            enc(Message("Test", fields))


def test_truncations_and_mutations_raise_only_wire_error():
    good = enc(_sample())
    for n in range(len(good)):
        try:
            dec(good[:n])
        except WireError:
            pass
    rng = random.Random(1234)
    raised = 0
    for _ in range(3000):
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            op, i = rng.random(), rng.randrange(len(b))
            if op < 0.6:
                b[i] = rng.randrange(256)
            elif op < 0.8:
                del b[i]
            else:
                b.insert(i, rng.choice([0x80, 0xff, 0x0b, 0x0c, 0x0e, rng.randrange(256)]))
        try:
            dec(bytes(b))
        except WireError:
            raised += 1
    assert raised > 300   # the mutations do hit the error paths


def test_iter_fields_scan():
    b = enc(Message("Test", {"a": 1, "b": "hi", "f": 2.0}))
    got = list(wire.iter_fields(b))
    assert [(n, wt) for n, wt, _, _ in got] == [(1, 0), (2, 2), (11, 5)]
    assert got[0][2] == 1 and bytes(b[slice(*got[1][2])]) == b"hi"
