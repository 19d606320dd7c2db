"""Protobuf text format (prototxt) parser and writer, checked against a schema.

    parse(text, message_type, schema, path="<string>", defines=None) -> Message
    parse_file(path, message_type="NetParameter", schema=None, defines=None) -> Message
    parse_net(path_or_text, defines=None, path=None) -> NetSpec    (dialect detection + upgrade)

(The writer, ``to_text``, is ``text_writer.py``.)

Accepted syntax: ``key: value``, ``key { ... }``, ``key: { ... }``, ``key < ... >``, list values
``key: [1, 2]``, optional ``,``/``;`` after a field, ``#`` comments, quoted strings with C escapes
(adjacent strings concatenate), enum names or numbers, decimal/hex/octal and negative integers,
floats with exponents, ``inf``/``nan`` and a trailing ``f``, booleans true/false/True/False/t/f/1/0,
and DeepLab's ``${NAME}`` placeholders (see ``tokenizer``).  Like Caffe's protobuf, a non-repeated
field given twice is an error.  Every error is a PrototxtError naming file:line:col.
"""
import difflib
import math
import os
import re

from ..errors import PrototxtError
from .bvlc_names import bvlc_field_note
from .message import Message
from .schema import INT_RANGES, get_schema
from .tokenizer import tokenize

_INT_RE = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\Z")
_FLOAT_RE = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fF]?\Z")
_SPECIAL_FLOATS = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BOOLS = {"true": True, "True": True, "t": True, "1": True,
          "false": False, "False": False, "f": False, "0": False}
_LAYER_TYPES = ("LayerParameter", "V1LayerParameter")
_CLOSE = {"{": "}", "<": ">"}
# Hints for names people carry over from the other dialect.
_HINTS = {
    "hole": "DeepLab v1's 'hole' exists only in `layers { }` files; V2 files use 'dilation'",
    "hole_h": "DeepLab v1's 'hole_h' exists only in `layers { }` files; V2 uses 'dilation'",
    "hole_w": "DeepLab v1's 'hole_w' exists only in `layers { }` files; V2 uses 'dilation'",
    "blobs_lr": "V2 `layer { }` files write param { lr_mult: ... } instead of blobs_lr",
    "weight_decay": "V2 `layer { }` files write param { decay_mult: ... } instead",
}


def closest(name, known, n=3):
    """Up to ``n`` names from ``known`` close to ``name`` (case-insensitive)."""
    lower = {}
    for k in known:
        lower.setdefault(k.lower(), k)
    return [lower[m] for m in difflib.get_close_matches(name.lower(), list(lower), n=n)]


def _where(path, tok):
    return f"{path}:{tok.line}:{tok.col}"


class _Parser:
    def __init__(self, tokens, schema, path):
        self.toks, self.schema, self.path, self.i = tokens, schema, path, 0
        self.is_sym = getattr(tokens, "is_sym", None) or (
            lambda i, sym: tokens[i].kind == "sym" and tokens[i].value == sym)

    def error(self, msg, tok):
        return PrototxtError(msg, self.path, tok.line, tok.col)

    def next(self):
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def peek(self):
        return self.toks[self.i]

    def accept(self, sym):
        if self.is_sym(self.i, sym):
            self.i += 1
            return True
        return False

    # -- context for messages ------------------------------------------------------------------
    def layer_name(self, layer):
        """The name of the enclosing layer (msg, index of its first token), reading ahead."""
        if layer is None:
            return None
        msg, start = layer
        if isinstance(msg.get("name"), str):
            return msg.get("name")
        depth = 0
        for j in range(start, len(self.toks) - 2):
            t = self.toks[j]
            if t.kind == "sym" and t.value in "{<":
                depth += 1
            elif t.kind == "sym" and t.value in "}>":
                depth -= 1
                if depth < 0:
                    break
            elif depth == 0 and t.kind == "word" and t.value == "name":
                t1, t2 = self.toks[j + 1], self.toks[j + 2]
                if t1.value == ":" and t2.kind == "string":
                    return t2.value.decode("utf-8", "replace")
        return None

    def in_layer(self, layer):
        name = self.layer_name(layer)
        return f" (layer '{name}')" if name else ""

    # -- grammar -------------------------------------------------------------------------------
    def parse_fields(self, msg, mdef, close, open_tok, layer):
        seen = {}
        while True:
            tok = self.next()
            if tok.kind == "eof":
                if close is None:
                    return
                raise self.error(f"'{open_tok.value}' opened here is never closed (end of file "
                                 f"at line {tok.line}; missing '{close}')", open_tok)
            if tok.kind == "sym" and tok.value == close:
                return
            if tok.kind != "word" or not _IDENT_RE.match(tok.value):
                what = "end of block" if close else "end of file"
                raise self.error(f"expected a field name or {what} in {mdef.name}, found "
                                 f"'{tok.text}'", tok)
            fdef = mdef.by_name.get(tok.value)
            if fdef is None:
                raise self.unknown_field(tok, mdef, layer)
            if not fdef.repeated and fdef.name in seen:
                first = seen[fdef.name]
                raise self.error(f"field '{fdef.name}' is not repeated and was already set at "
                                 f"line {first.line}:{first.col}{self.in_layer(layer)}", tok)
            seen[fdef.name] = tok
            if fdef.type == "message":
                self.parse_message_field(msg, fdef, tok, layer)
            else:
                if not self.accept(":"):
                    found = self.peek()
                    raise self.error(f"expected ':' after '{fdef.name}', found '{found.text}'",
                                     found)
                if fdef.repeated and self.accept("["):
                    self.parse_list(lambda: msg.append(fdef.name, self.scalar(fdef, layer)))
                else:
                    value = self.scalar(fdef, layer)
                    if fdef.repeated:
                        msg.append(fdef.name, value)
                    else:
                        msg[fdef.name] = value
            if not self.accept(","):
                self.accept(";")

    def parse_list(self, item):
        if self.accept("]"):
            return
        while True:
            item()
            if self.accept("]"):
                return
            tok = self.next()
            if not (tok.kind == "sym" and tok.value == ","):
                raise self.error(f"expected ',' or ']' in a list, found '{tok.text}'", tok)

    def parse_message_field(self, msg, fdef, name_tok, layer):
        colon = self.accept(":")
        if colon and fdef.repeated and self.accept("["):
            self.parse_list(lambda: msg.append(fdef.name, self.block(fdef, name_tok, layer)))
            return
        sub = self.block(fdef, name_tok, layer)
        if fdef.repeated:
            msg.append(fdef.name, sub)
        else:
            msg[fdef.name] = sub

    def block(self, fdef, name_tok, layer):
        tok = self.next()
        if not (tok.kind == "sym" and tok.value in _CLOSE):
            raise self.error(f"'{fdef.name}' is a {fdef.type_name} message: expected '{{', "
                             f"found '{tok.text}'", tok)
        sub = Message(fdef.type_name, where=_where(self.path, name_tok))
        if fdef.type_name in _LAYER_TYPES:
            layer = (sub, self.i)
        self.parse_fields(sub, self.schema.messages[fdef.type_name], _CLOSE[tok.value], tok,
                          layer)
        return sub

    def unknown_field(self, tok, mdef, layer):
        real = bvlc_field_note(tok.value, mdef.name, self.schema.name)
        if real is not None:
            return self.error(f"{real}{self.in_layer(layer)}", tok)
        msg = f"unknown field '{tok.value}' in {mdef.name}{self.in_layer(layer)}"
        near = closest(tok.value, mdef.by_name)
        if near:
            msg += f"; did you mean {', '.join(near)}?"
        elif len(mdef.fields) <= 12:
            msg += f"; known fields: {', '.join(f.name for f in mdef.fields)}"
        if tok.value in _HINTS:
            msg += f" ({_HINTS[tok.value]})"
        return self.error(msg, tok)

    # -- scalar values --------------------------------------------------------------------------
    def scalar(self, fdef, layer):
        tok = self.next()
        t = fdef.type
        what = f"field '{fdef.name}'"
        if tok.kind == "sym" and tok.value in "{<":
            raise self.error(f"{what} is a {t}, not a message: expected a value, found "
                             f"'{tok.value}'", tok)
        if t in ("string", "bytes"):
            if tok.kind != "string":
                hint = ""
                if fdef.name == "type" and tok.kind == "word":
                    hint = ("; V2 `layer { }` blocks name their type as a string, e.g. "
                            "type: \"Convolution\" (enum names like CONVOLUTION belong in "
                            "V1 `layers { }`)")
                raise self.error(f"{what} expects a quoted string, found '{tok.text}'{hint}", tok)
            if t == "bytes":
                return tok.value
            try:
                return tok.value.decode("utf-8")
            except UnicodeDecodeError:
                raise self.error(f"{what}: string is not valid UTF-8", tok) from None
        if tok.kind != "word":
            found = "a string" if tok.kind == "string" else f"'{tok.text}'"
            hint = ""
            if t == "enum" and fdef.name == "type" and tok.kind == "string":
                hint = (" (V1 `layers { }` blocks name their type with an enum such as "
                        "CONVOLUTION; string types belong in V2 `layer { }`)")
            article = "an" if t[0] in "aeio" else "a"
            raise self.error(f"{what} expects {article} {t} value, found {found}{hint}", tok)
        text = tok.value
        if t == "bool":
            if text not in _BOOLS:
                raise self.error(f"{what} expects true or false, found '{text}'", tok)
            return _BOOLS[text]
        if t in ("float", "double"):
            key = text.lower().lstrip("-")
            if key in _SPECIAL_FLOATS:
                v = _SPECIAL_FLOATS[key]
                return -v if text.startswith("-") else v
            if _INT_RE.match(text):
                # protobuf negates the double, so "-0" is -0.0 (an int -0 is 0)
                return -float(_int_value(text[1:])) if text[0] == "-" else float(_int_value(text))
            if _FLOAT_RE.match(text):
                return float(text.rstrip("fF"))
            raise self.error(f"{what} expects a number, found '{text}'", tok)
        if t == "enum":
            values = self.schema.enums[fdef.type_name]
            if _INT_RE.match(text):
                number = _int_value(text)
                for k, v in values.items():
                    if v == number:
                        return k
                raise self.error(f"{what}: {number} is not a value of enum "
                                 f"{fdef.type_name}{self.in_layer(layer)}", tok)
            if text in values:
                return text
            near = closest(text, values)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            listing = ", ".join(values) if len(values) <= 12 else f"{len(values)} names"
            raise self.error(f"unknown value '{text}' for {what} (enum {fdef.type_name}: "
                             f"{listing}){self.in_layer(layer)}{hint}", tok)
        # integer types
        if not _INT_RE.match(text):
            if re.match(r"-?0[0-9]+\Z", text):
                raise self.error(f"{what}: '{text}' is not a valid integer (a leading 0 means "
                                 "octal)", tok)
            kind = "a number with a fraction" if _FLOAT_RE.match(text) else f"'{text}'"
            raise self.error(f"{what} expects an integer ({t}), found {kind}", tok)
        value = _int_value(text)
        lo, hi = INT_RANGES[t]
        if not lo <= value <= hi:
            raise self.error(f"{what}: {value} is out of range for {t}", tok)
        return value


def _int_value(text):
    neg = text.startswith("-")
    body = text[1:] if neg else text
    if body[:2] in ("0x", "0X"):
        v = int(body[2:], 16)
    elif len(body) > 1 and body[0] == "0":
        v = int(body[1:], 8)
    else:
        v = int(body)
    return -v if neg else v


def parse_tokens(tokens, message_type, schema, path="<string>"):
    """Parse an already tokenized text (see ``tokenizer.tokenize``) into a Message."""
    schema = get_schema(schema)
    if message_type not in schema.messages:
        raise ValueError(f"schema {schema.name} has no message {message_type}")
    msg = Message(message_type, where=f"{path}:1:1")
    _Parser(tokens, schema, path).parse_fields(msg, schema.messages[message_type], None,
                                               None, None)
    return msg


def parse(text, message_type, schema, path="<string>", defines=None):
    """Parse prototxt ``text`` as ``message_type`` of ``schema`` (a Schema or its name)."""
    return parse_tokens(tokenize(text, path, defines), message_type, schema, path)


def read_text(path):
    """A text file's contents; unreadable or non-UTF-8 files are PrototxtErrors."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (OSError, ValueError) as e:    # ValueError: a NUL in the path
        raise PrototxtError(f"cannot read file: {getattr(e, 'strerror', None) or e}",
                            repr(str(path)) if "\0" in str(path) else str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise PrototxtError("file is not valid UTF-8", str(path), line, col) from None


def parse_file(path, message_type="NetParameter", schema=None, defines=None):
    """Parse a prototxt file as ``message_type``.  ``schema`` None: for a NetParameter the
    schema of the file's dialect ("normalized" for V2, "bvlc" or "deeplab_v1" for V1 files; see
    ``upgrade.detect_dialect``), else "bvlc" (a superset of DeepLab v1's solver fields)."""
    path = str(path)
    tokens = tokenize(read_text(path), path, defines)
    if schema is None and message_type == "NetParameter":
        from .upgrade import SCHEMA_OF_DIALECT, detect_dialect
        schema = SCHEMA_OF_DIALECT[detect_dialect(tokens, path)[0]]
    return parse_tokens(tokens, message_type, schema or "bvlc", path)


def _is_path(s):
    if isinstance(s, os.PathLike):
        return True
    if "\n" in s or "{" in s:
        return False
    return ":" not in s or os.path.exists(s)


def parse_net(path_or_text, defines=None, path=None):
    """A NetSpec from a net prototxt (file path or the text itself), any dialect.

    A ``str`` with a newline or '{', or with ':' that is not an existing file, is the text
    (``path`` then names it in errors); anything else is a file path."""
    from .upgrade import parse_net_text
    if _is_path(path_or_text):
        return parse_net_text(read_text(path_or_text), str(path_or_text), defines)
    return parse_net_text(path_or_text, path or "<string>", defines)
