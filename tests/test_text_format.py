"""Prototxt tokenizer, parser and writer: syntax edge cases and every error with its line:col."""
import math
import os

import pytest

from deeplab_caffe.errors import PrototxtError
from deeplab_caffe.proto import Message, parse, parse_file, to_text, tokenize

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "caffe")


def net(text, schema="normalized", defines=None):
    return parse(text, "NetParameter", schema, path="t.prototxt", defines=defines)


def conv(body):
    m = net('layer { name: "c" type: "Convolution" convolution_param { %s } }' % body)
    return m["layer"][0]["convolution_param"]


def filler(body):
    return conv("weight_filler { %s }" % body)["weight_filler"]


def err(text, schema="normalized", defines=None):
    with pytest.raises(PrototxtError) as e:
        net(text, schema, defines)
    return e.value


# -- syntax -------------------------------------------------------------------------------------
def test_comments_blocks_and_separators():
    m = net('''# leading comment
name: "a#b"   # '#' inside a string is text
layer { name: "x", type: "ReLU"; }   # , and ; separators
layer: { name: "y" type: "ReLU" }
layer < name: "z" type: "ReLU" >
''')
    assert m["name"] == "a#b"
    assert [l["name"] for l in m["layer"]] == ["x", "y", "z"]
    assert all(isinstance(l, Message) and l.type_name == "LayerParameter" for l in m["layer"])


def test_string_escapes_and_concatenation():
    m = net(r'''name: "q\"\'\\\n\t\101\x41\x4a\u00e9\0" 'single"quote' "x"''')
    assert m["name"] == "q\"'\\\n\tAAJ\u00e9\0" + 'single"quote' + "x"
    assert net("name: 'caf\xe9'")["name"] == "caf\xe9"    # UTF-8 text passes through


def test_integers():
    f = filler("sparse: -3")
    assert f["sparse"] == -3
    c = conv("num_output: 0x10 group: 010 kernel_size: 3 kernel_size: 0")
    assert (c["num_output"], c["group"], c["kernel_size"]) == (16, 8, [3, 0])
    shape = net("input_shape { dim: -0x10 dim: 9223372036854775807 }")["input_shape"][0]
    assert shape["dim"] == [-16, 2**63 - 1]


@pytest.mark.parametrize("text,value", [
    ("1e-3", 1e-3), ("1.5E+2", 150.0), (".5", 0.5), ("5.", 5.0), ("2f", 2.0), ("1.5f", 1.5),
    ("-0.25", -0.25), ("7", 7.0), ("0x10", 16.0), ("inf", math.inf), ("-inf", -math.inf),
    ("Infinity", math.inf), ("-INF", -math.inf)])
def test_floats(text, value):
    assert filler(f"std: {text}")["std"] == value


def test_nan():
    assert math.isnan(filler("std: nan")["std"])


@pytest.mark.parametrize("word,value", [("true", True), ("True", True), ("t", True), ("1", True),
                                        ("false", False), ("False", False), ("f", False),
                                        ("0", False)])
def test_booleans(word, value):
    assert conv(f"bias_term: {word}")["bias_term"] is value


def test_enums_by_name_and_number():
    m = net('layer { pooling_param { pool: AVE } } layer { pooling_param { pool: 2 } }')
    assert [l["pooling_param"]["pool"] for l in m["layer"]] == ["AVE", "STOCHASTIC"]


def test_repeated_fields_and_list_syntax():
    m = net('layer { bottom: "a" bottom: "b" top: "c" loss_weight: [1, 0.5] } '
            'input_shape { dim: [1, 3, 5, 7] } input_shape: [{ dim: 2 }, { dim: 4 }]')
    layer = m["layer"][0]
    assert layer["bottom"] == ["a", "b"] and layer["top"] == ["c"]
    assert layer["loss_weight"] == [1.0, 0.5]
    assert [s["dim"] for s in m["input_shape"]] == [[1, 3, 5, 7], [2], [4]]


def test_where_points_at_field_names():
    m = net('name: "n"\n  layer {\n    convolution_param {\n    }\n  }\n')
    assert m.where == "t.prototxt:1:1"
    assert m["layer"][0].where == "t.prototxt:2:3"
    assert m["layer"][0]["convolution_param"].where == "t.prototxt:3:5"


def test_placeholders():
    text = ('name: "${NET}_x"\n'
            'layer { name: "fc8_${EXP}" top: "${DIR}/list.txt"  # ${NOT_A_VALUE} in a comment\n'
            '  convolution_param { num_output: ${NUM_LABELS} pad: -${P} } }\n')
    with pytest.raises(PrototxtError):   # pad is uint32: -2 is out of range
        net(text, defines={"NET": "n", "EXP": "voc12", "DIR": "/d", "NUM_LABELS": 21, "P": 2})
    m = net(text.replace("pad: -${P}", "kernel_size: ${P}"),
            defines={"NET": "n", "EXP": "voc12", "DIR": "C:\\d", "NUM_LABELS": 21, "P": 2})
    layer = m["layer"][0]
    assert m["name"] == "n_x" and layer["name"] == "fc8_voc12"
    assert layer["top"] == ["C:\\d/list.txt"]          # values are taken verbatim
    assert layer["convolution_param"]["num_output"] == 21
    assert layer["convolution_param"]["kernel_size"] == [2]


def test_positions_after_placeholders_are_those_of_the_file():
    e = err('name: "${LONG_NAME}" bogus: 1', defines={"LONG_NAME": "x" * 50})
    assert (e.line, e.column) == (1, 22)


# -- errors, each with the exact line:col -------------------------------------------------------
@pytest.mark.parametrize("text,line,col,words", [
    # unclosed brace: reported at the brace that is never closed
    ('layer {\n  name: "a"\n  convolution_param {\n    num_output: 1\n  }\n', 1, 7,
     ["never closed", "'}'"]),
    ('layer <\n name: "a" }', 2, 12, ["'}'"]),
    # bad enum value with the closest names
    ('layer {\n name: "pool1"\n pooling_param { pool: MAXX } }', 3, 24,
     ["MAXX", "did you mean MAX", "pool1"]),
    ('layer { pooling_param { pool: 7 } }', 1, 31, ["7 is not a value"]),
    # unknown field: closest names and the enclosing layer, even when its name comes later
    ('layer {\n  convolution_param { kernal_size: 3 }\n  name: "conv1" }', 2, 23,
     ["kernal_size", "kernel_size", "conv1", "ConvolutionParameter"]),
    ('nmae: "x"', 1, 1, ["did you mean name"]),
    # wrong value types
    ('layer { convolution_param { num_output: "3" } }', 1, 41, ["uint32", "string"]),
    ('layer { convolution_param { num_output: 1.5 } }', 1, 41, ["integer"]),
    ('layer { convolution_param { num_output: -1 } }', 1, 41, ["out of range"]),
    ('layer { convolution_param { group: 09 } }', 1, 36, ["octal"]),
    ('layer { convolution_param { axis: 2147483648 } }', 1, 35, ["out of range"]),
    ('layer { convolution_param { bias_term: yes } }', 1, 40, ["true or false"]),
    ('layer { name: conv1 }', 1, 15, ["quoted string"]),
    ('layer { type: CONVOLUTION }', 1, 15, ['"Convolution"']),
    ('layer { convolution_param: 3 }', 1, 28, ["expected '{'"]),
    ('layer { name { } }', 1, 14, ["expected ':'"]),
    ('layer { name: { } }', 1, 15, ["not a message"]),
    ('layer { convolution_param { weight_filler { std: abc } } }', 1, 50, ["number"]),
    # repeated singular field
    ('name: "a"\nname: "b"', 2, 1, ["already set at line 1:1"]),
    # stray tokens
    ('}', 1, 1, ["expected a field name"]),
    ('name: "a" ; ;', 1, 13, ["expected a field name"]),
    ('layer { name: }', 1, 15, ["quoted string"]),
    ('layer { : }', 1, 9, ["expected a field name"]),
    ('input_shape { dim: [1 2] }', 1, 23, ["',' or ']'"]),
    ('name: "a" @', 1, 11, ["unexpected character"]),
    # lexical errors
    ('name: "abc\n"', 1, 7, ["unterminated string"]),
    ('name: "a\\qb"', 1, 9, ["invalid escape"]),
    ('name: "\\777"', 1, 8, ["octal escape"]),
    ('name: $X', 1, 7, ["malformed placeholder"]),
    ('layer {\n  name: "a${ UNSET}"', 2, 11, ["bad placeholder"]),
])
def test_errors(text, line, col, words):
    e = err(text)
    assert (e.path, e.line, e.column) == ("t.prototxt", line, col), str(e)
    assert str(e).startswith(f"t.prototxt:{line}:{col}: ")
    for w in words:
        assert w in str(e), str(e)


def test_unfilled_placeholder_names_file_line_col_and_name():
    e = err('name: "n"\nlayer {\n  convolution_param { num_output: ${NUM_LABELS} } }',
            defines={"OTHER": 1})
    assert (e.line, e.column) == (3, 35)
    assert "NUM_LABELS" in str(e) and "OTHER" in str(e)
    e = err('name: "${DATA_ROOT}/x"')
    assert (e.line, e.column) == (1, 8) and "DATA_ROOT" in str(e)


def test_placeholder_that_is_not_one_value():
    e = err("layer { convolution_param { num_output: ${N} } }", defines={"N": "2 3"})
    assert (e.line, e.column) == (1, 41) and "not a single value" in str(e)


def test_tokens_carry_positions():
    toks = tokenize('a: "x" "y"\n  b { }', "f")
    assert [(t.kind, t.line, t.col) for t in toks] == [
        ("word", 1, 1), ("sym", 1, 2), ("string", 1, 4), ("word", 2, 3), ("sym", 2, 5),
        ("sym", 2, 7), ("eof", 2, 8)]
    assert toks[2].value == b"xy"


# -- writer -------------------------------------------------------------------------------------
def test_round_trip_through_to_text():
    text = r'''name: "a\"b\\c\001\n\te" force_backward: true
state { phase: TRAIN level: 2 stage: "s1" stage: "s2" }
layer { name: "c" type: "Convolution" bottom: "d" top: "c" loss_weight: 0.5
  param { lr_mult: 10 decay_mult: 0 name: "shared" share_mode: PERMISSIVE }
  convolution_param { num_output: 21 pad: 1 kernel_size: 3 dilation: 2 dilation: 4
    weight_filler { type: "gaussian" std: 0.01 sparse: -1 } engine: CAFFE }
  include { phase: TEST min_level: -3 not_stage: "x" } }
layer { name: "i" type: "Interp" interp_param { shrink_factor: 8 pad_beg: -1 } }
layer { name: "crf" type: "DenseCRF" dense_crf_param { bi_w: 4 bi_xy_std: 121 bi_rgb_std: 5
  pos_w: 3 pos_xy_std: 3 max_iter: 10 } }
layer { name: "l" type: "SoftmaxWithLoss" softmaxloss_param { ignore_label: 255 ignore_label: 0 }
  propagate_down: true propagate_down: false }
input_shape { dim: 1 dim: 3 dim: 513 dim: 513 }'''
    m = net(text)
    out = to_text(m, "normalized")
    assert net(out) == m
    assert to_text(net(out), "normalized") == out


def test_writer_special_values():
    m = net("layer { convolution_param { weight_filler { std: inf mean: -inf value: nan "
            "min: 0.0010000000474974513 max: 1e-30 } } }")
    out = to_text(m, "normalized")
    assert "std: inf" in out and "mean: -inf" in out and "value: nan" in out
    assert "min: 0.001\n" in out           # shortest text of the same float32
    back = net(out)["layer"][0]["convolution_param"]["weight_filler"]
    assert back["std"] == math.inf and back["mean"] == -math.inf
    assert math.isnan(back["value"]) and back["max"] == 1e-30


def test_writer_rejects_unknown_fields():
    with pytest.raises(PrototxtError):
        to_text(Message("NetParameter", {"bogus": 1}), "bvlc")


# -- files --------------------------------------------------------------------------------------
def test_parse_file_errors(tmp_path):
    with pytest.raises(PrototxtError) as e:
        parse_file(tmp_path / "missing.prototxt")
    assert "cannot read" in str(e.value)
    bad = tmp_path / "bad.prototxt"
    bad.write_bytes(b'name: "ok"\nlayer { name: "\xff" }\n')
    with pytest.raises(PrototxtError) as e:
        parse_file(bad)
    assert (e.value.line, e.value.column) == (2, 16)


@pytest.mark.parametrize("name", ["lenet_solver.prototxt", "cifar10_quick_solver.prototxt"])
@pytest.mark.parametrize("schema", ["bvlc", "deeplab_v1"])
def test_fixture_solvers(name, schema):
    path = os.path.join(FIXTURES, "v1", name)
    if not os.path.exists(path):
        pytest.skip("shared fixtures absent")
    s = parse_file(path, "SolverParameter", schema)
    assert s["solver_mode"] == "GPU" and s["test_iter"] == [100] and s["test_interval"] == 500
    assert s["net"].startswith("examples/") and s["momentum"] == 0.9
    assert parse(to_text(s, schema), "SolverParameter", schema) == s


def test_negative_zero_float_keeps_its_sign():
    # Found by tests/test_properties.py: "-0" parsed as +0.0, so to_text did not round-trip.
    import math
    msg = parse("base_lr: -0 momentum: -0x0 gamma: -0.0", "SolverParameter", "bvlc")
    assert all(math.copysign(1, msg[k]) == -1 for k in ("base_lr", "momentum", "gamma"))
