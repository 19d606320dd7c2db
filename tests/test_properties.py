"""Property-based tests (hypothesis): the wire codec, the prototxt tokenizer and parser, the
weight-file readers and the .rngstate reader, on generated and mutated input (issue 18).
Bounded example counts keep the suite fast; tools/fuzz_*.py run for minutes outside CI."""
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import deeplab_caffe as dc
from deeplab_caffe.io import decode_net, write_caffemodel
from deeplab_caffe.io.solverstate import decode_solverstate
from deeplab_caffe.proto import Message, parse, to_text, tokenize, wire
from deeplab_caffe.proto.schema import get_schema
from deeplab_caffe.solver import state as solver_state

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BVLC = get_schema("bvlc")

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
floats32 = st.floats(width=32, allow_nan=False)
shapes = st.lists(st.integers(1, 4), min_size=0, max_size=4)


@st.composite
def layers(draw):
    """(name, type, [float32 blobs]) as write_caffemodel takes them."""
    out = []
    for i in range(draw(st.integers(0, 4))):
        blobs = []
        for shape in draw(st.lists(shapes, max_size=2)):
            n = int(np.prod(shape)) if shape else 1
            vals = draw(st.lists(floats32, min_size=n, max_size=n))
            blobs.append(np.array(vals, np.float32).reshape(shape))
        out.append((draw(names) or f"l{i}", draw(st.sampled_from(["Convolution", "ReLU", ""])),
                    blobs))
    return out


@FAST
@given(layers(), st.sampled_from(["v1", "v2"]))
def test_caffemodel_round_trip(tmp_path_factory, net, fmt):
    path = tmp_path_factory.mktemp("rt") / "m.caffemodel"
    write_caffemodel(path, net, format=fmt, fsync=False)
    back = dc.io.read_caffemodel(path, schema="bvlc")
    assert [l.name for l in back.layers] == [name for name, _, _ in net]
    for got, (_, _, blobs) in zip(back.layers, net):
        assert len(got.blobs) == len(blobs)
        for a, b in zip(got.blobs, blobs):
            assert a.size == b.size and np.array_equal(a.reshape(-1), b.reshape(-1))


def _net_bytes():
    return wire.encode(Message("NetParameter", {"name": "n", "layer": [Message(
        "LayerParameter", {"name": "ip", "type": "InnerProduct", "blobs": [
            dc.io.blobs.blob_to_proto(np.arange(6, dtype=np.float32).reshape(2, 3))]})]}), BVLC)


@FAST
@given(st.binary(max_size=400))
@example(b"\xa2\x06\x00" * 10)
@example(b"\x12\x02\x28\x28")
def test_random_bytes_raise_only_caffe_errors(data):
    for decode in (lambda b: decode_net(b), lambda b: decode_solverstate(b),
                   lambda b: wire.decode(b, BVLC, "NetParameter")):
        try:
            decode(data)
        except dc.CaffeError:
            pass


@FAST
@given(st.data())
def test_mutated_weight_files_raise_only_caffe_errors(data):
    buf = bytearray(_net_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[at] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del buf[at:at + data.draw(st.integers(1, 8))]
        else:
            buf[at:at] = data.draw(st.binary(min_size=1, max_size=6))
    try:
        decode_net(bytes(buf))
    except dc.CaffeError:
        pass


# -- prototxt ---------------------------------------------------------------------------------
net_messages = st.builds(
    lambda name, ls: Message("NetParameter", {"name": name, "layer": ls}),
    names,
    st.lists(st.builds(
        lambda n, t, tops, lr, k: Message("LayerParameter", {
            "name": n, "type": t, "top": tops,
            "param": [Message("ParamSpec", {"lr_mult": lr})],
            "convolution_param": Message("ConvolutionParameter", {"kernel_size": k})}),
        names, names, st.lists(names, max_size=3), floats32, st.lists(st.integers(0, 2**31 - 1),
                                                                      max_size=3)),
        max_size=4))


@FAST
@given(net_messages)
def test_prototxt_round_trip(msg):
    text = to_text(msg, "normalized")
    back = parse(text, "NetParameter", "normalized")
    assert to_text(back, "normalized") == text
    assert [l["name"] for l in back.getlist("layer")] == [l["name"] for l in msg.getlist("layer")]
    assert [l.getlist("top") for l in back.getlist("layer")] == \
        [l.getlist("top") for l in msg.getlist("layer")]


@FAST
@given(st.lists(st.tuples(st.text(st.characters(codec="ascii", exclude_characters='"\\\n'),
                                  max_size=5),
                          st.sampled_from([" ", "\n", " # c\n", "\t"])), min_size=1,
                max_size=30))
def test_adjacent_strings_and_positions(pieces):
    text = "name: " + "".join(f'"{s}"{sep}' for s, sep in pieces) + "x"
    toks = tokenize(text)
    assert toks[2].value == "".join(s for s, _ in pieces).encode()
    # Every token's line:col is where its text starts.
    lines = text.split("\n")
    for t in toks:
        if t.kind != "eof":
            assert lines[t.line - 1][t.col - 1:].startswith(t.text.split(" ")[0])
    assert toks[3].kind == "word" and toks[3].line == text.count("\n") + 1


@FAST
@given(st.lists(st.sampled_from(list('abn_ :{}<>[],;"\'#\n\\$0123456789.-e') +
                                ["${X}", "name", "layer", "type", "top", "base_lr"]),
                max_size=40).map("".join))
def test_random_prototxt_raises_only_prototxt_errors(text):
    for typ, schema in (("NetParameter", "normalized"), ("SolverParameter", "bvlc")):
        try:
            parse(text, typ, schema, defines={"X": "1"})
        except dc.PrototxtError as e:
            assert e.line is None or e.line >= 1


# -- the .rngstate side file ------------------------------------------------------------------
@pytest.fixture(scope="module")
def side_file(tmp_path_factory):
    from solver_util import make_solver
    d = tmp_path_factory.mktemp("rng")
    s = make_solver(d, 'lr_policy: "fixed"\nbase_lr: 0.01\nmax_iter: 5\n')
    s.step(2)
    s.snapshot()
    return (d / "ls_iter_2.rngstate").read_bytes()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=12)


def _read_or_refuse(path):
    """read() refuses with RngStateError, or returns a state the generators accept."""
    try:
        state = solver_state.read(path)
    except solver_state.RngStateError as e:
        assert str(path) in str(e)
        return None
    solver_state.apply_rng(state)
    return state


@FAST
@given(value=json_values, field=st.sampled_from(
    ["torch", "numpy", "python", "batches", "seeds", "losses", "cuda", "iter", "version",
     "format", "smoothed_loss", "loss_start"]))
@example(value={"key": "MT19937", "pos": 9999, "has_gauss": 0, "cached_gaussian": 0.0},
         field="numpy")
@example(value={"version": 3, "state": [0] * 624 + [625], "gauss_next": None}, field="python")
def test_rngstate_reader_checks_every_field(tmp_path_factory, side_file, value, field):
    good = json.loads(side_file)
    if field == "numpy" and isinstance(value, dict) and "pos" in value:
        value["keys"] = good["numpy"]["keys"]
    good[field] = value
    path = tmp_path_factory.mktemp("rng") / "x.rngstate"
    path.write_text(json.dumps(good))
    state = _read_or_refuse(path)
    if state is not None:
        assert all(type(b) is int for b in state["batches"])
        assert 0 <= state["numpy"][2] <= 624


@FAST
@given(st.data())
def test_mutated_rngstate_is_refused_or_valid(tmp_path_factory, side_file, data):
    raw = bytearray(side_file)
    at = data.draw(st.integers(0, len(raw) - 1))
    if data.draw(st.booleans()):
        del raw[at:]
    else:
        raw[at] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.mktemp("rng") / "x.rngstate"
    path.write_bytes(bytes(raw))
    _read_or_refuse(path)
