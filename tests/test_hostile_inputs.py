"""Decoders and parsers on hostile input: linear time, bounded memory, clear errors with
positions (issue 18's probes, scaled down; the full-size numbers are in the issue's report)."""
import time
import tracemalloc

import numpy as np
import pytest

import deeplab_caffe as dc
from deeplab_caffe.io import decode_net
from deeplab_caffe.io.blobs import MAX_AXES
from deeplab_caffe.proto import parse, tokenize, wire
from deeplab_caffe.proto.wire_encode import _varint_bytes


def ld(field, payload):
    """A length-delimited field."""
    return _varint_bytes(field << 3 | 2) + _varint_bytes(len(payload)) + payload


def v2_blob_file(dims, data=b""):
    shape = ld(1, b"".join(_varint_bytes(d) for d in dims))       # BlobShape.dim, packed
    blob = ld(7, shape) + (ld(5, data) if data else b"")           # BlobProto.shape, .data
    return ld(100, ld(1, b"x") + ld(2, b"ReLU") + ld(7, blob))     # NetParameter.layer


def test_blob_with_too_many_dims_is_refused_at_once():
    buf = v2_blob_file([2] * 20000)
    t = time.perf_counter()
    with pytest.raises(dc.WireError, match=r"layer\[0\]\.blobs\[0\]: 20000 dimensions in a blob "
                       r"shape; Caffe allows at most 32 \(kMaxBlobAxes\)"):
        decode_net(buf)
    assert time.perf_counter() - t < 2.0
    # 32 axes is Caffe's limit and reads.
    m = decode_net(v2_blob_file([1] * MAX_AXES, np.ones(1, "<f4").tobytes()))
    assert m.layers[0].blobs[0].shape == (1,) * MAX_AXES


def test_blob_element_count_beyond_int64_is_refused():
    with pytest.raises(dc.WireError, match="more than 2\\^63-1 elements"):
        decode_net(v2_blob_file([1 << 40, 1 << 40]))


def test_flood_of_empty_layers_is_refused_in_bounded_memory(monkeypatch):
    n = 400_000                                   # 800 KB of empty NetParameter.layer
    buf = ld(100, b"") * n
    monkeypatch.setattr(wire, "MESSAGES_FREE", 10_000)     # tracemalloc is slow: fewer messages
    tracemalloc.start()
    try:
        with pytest.raises(dc.WireError, match="more than 10000 messages and more than one "
                           "per 64 bytes") as e:
            decode_net(buf)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    k = 10_000 + len(buf) // 64 - 1              # the NetParameter itself is one message
    assert e.value.offset == 3 * k + 3 and f"NetParameter.layer[{k}]" in str(e.value)
    assert peak < 30 * len(buf), peak             # all 400k layers decoded: ~300x
    monkeypatch.undo()
    # The same flood in a V1 file is refused while its schema is detected.
    v1 = (ld(2, b"\x28\x28") * n)                 # layers { type: 40 } (DeepLab v1's INTERP)
    with pytest.raises(dc.WireError, match="more than 100000 messages"):
        decode_net(v1)
    # Below the budget many small messages still decode.
    assert len(decode_net(ld(100, b"") * 50_000).layers) == 50_000


def test_message_budget_scales_with_the_input():
    assert wire.message_budget(0) == wire.MESSAGES_FREE
    assert wire.message_budget(64 * 1000) == wire.MESSAGES_FREE + 1000


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_prototxt_of_dim_lines_parses_within_20x_its_size():
    n = 60_000
    text = ('layer { name: "in" type: "Input" top: "d" input_param { shape {\n' +
            "  dim: 1\n" * n + "} } }\n")
    msg, peak = _peak(lambda: parse(text, "NetParameter", "normalized"))
    dims = msg.getlist("layer")[0]["input_param"]["shape"][0].getlist("dim")
    assert len(dims) == n
    assert peak < 20 * len(text), (peak, len(text))


def test_tokens_are_compact():
    text = '  dim: 1 name: "a" b { }\n' * 20_000
    toks, peak = _peak(lambda: tokenize(text))
    assert len(toks) == 20_000 * 9 + 1
    assert peak < 10 * len(text), (peak, len(text))
    assert toks[7] == ("sym", "{", 1, 22, "{") and toks[-1].kind == "eof"
    assert toks[-1][2:4] == (20_001, 1)


def test_adjacent_strings_concatenate_in_linear_time():
    n = 200_000                                  # 1 MB of "ab" "ab" ...: 18.7 s when quadratic
    text = 'name: ' + '"ab" ' * n + '\nbad'
    t = time.perf_counter()
    toks = tokenize(text)
    value = toks[2].value
    assert time.perf_counter() - t < 8.0
    assert value == b"ab" * n and toks[2][2:4] == (1, 7)
    # Positions after the run stay exact, and the parser reports them.
    assert toks[3][:4] == ("word", "bad", 2, 1)
    with pytest.raises(dc.PrototxtError, match=r"<string>:2:1: .*'bad'"):
        parse(text, "NetParameter", "normalized")


def test_adjacent_strings_across_lines_and_comments():
    toks = tokenize('a: "x" # c\n  "y\\n" \'z\'\n b: 1')
    assert toks[2] == ("string", b"xy\nz", 1, 4, '"x" "y\\n" \'z\'')
    assert toks[3][:4] == ("word", "b", 3, 2)


def test_nul_in_a_path_is_a_clear_error():
    # Found by tools/fuzz.py prototxt: parse_net takes a one-line string as a file path, and
    # open() raises ValueError (not OSError) for a NUL in it.
    from deeplab_caffe.proto import parse_net
    with pytest.raises(dc.PrototxtError, match="cannot read file: embedded null byte"):
        parse_net("#pa\x03\x00 nel_s&")
    with pytest.raises(dc.CaffeError, match="cannot open: embedded null byte"):
        dc.io.read_caffemodel("a\x00b.caffemodel")
