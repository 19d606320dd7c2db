"""Tokenizer for protobuf text format as Caffe files use it, with DeepLab's ``${NAME}`` templates.

Tokens are ``Token(kind, value, line, col, text)``:
  kind "word"   identifiers and numbers (value: the text after filling placeholders)
  kind "string" one or more adjacent quoted strings, concatenated (value: bytes, escapes decoded)
  kind "sym"    one of ``{ } < > : , ; [ ]``
  kind "eof"    end of input
``line`` and ``col`` (1-based) are where the token starts in the file as written, so placeholders
never shift reported positions.  Placeholders are filled from ``defines`` the way DeepLab's run
scripts fill them with sed (plain text), except inside comments, which are skipped first.
"""
import re
from collections import namedtuple

from ..errors import PrototxtError

Token = namedtuple("Token", "kind value line col text")

_TOKEN_RE = re.compile(r"""
    (?P<nl>\n)
  | (?P<ws>[ \t\r\f\v]+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\[^\n])*"|'(?:[^'\\\n]|\\[^\n])*')
  | (?P<word>(?:[A-Za-z0-9_.+\-]|\$\{[^}\n]*\})+)
  | (?P<sym>[{}<>:,;\[\]])
""", re.X)
_PLACEHOLDER_RE = re.compile(r"\$\{([^}\n]*)\}")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SIMPLE_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "a": b"\a", "b": b"\b", "f": b"\f",
                   "v": b"\v", "\\": b"\\", "'": b"'", '"': b'"', "?": b"?"}
_ESCAPE_RE = re.compile(r"\\(?:([0-7]{1,3})|[xX]([0-9a-fA-F]{1,2})|u([0-9a-fA-F]{4})|"
                        r"U([0-9a-fA-F]{8})|(.))", re.S)


class CaffeDefines(dict):
    """Defines for Caffe's own command line (``deeplab-caffe``): Caffe has no placeholders, so a
    ``${NAME}`` left unfilled inside a quoted string stays as written (DeepLab's solver files
    keep a ``${MODEL}`` that their sed script never fills); elsewhere it is still an error."""


class _Source:
    def __init__(self, text, path, defines):
        self.text, self.path = text, path
        self.defines = {str(k): str(v) for k, v in (defines or {}).items()}
        self.keep_undefined_in_strings = isinstance(defines, CaffeDefines)

    def error(self, msg, line, col):
        return PrototxtError(msg, self.path, line, col)

    def fill(self, raw, line, col, in_string=False):
        """Replace each ``${NAME}`` in ``raw`` (which starts at line:col)."""
        def sub(m):
            name = m.group(1)
            at = col + m.start()
            if in_string and self.keep_undefined_in_strings and name not in self.defines:
                return m.group(0)
            if not _NAME_RE.match(name):
                raise self.error(f"bad placeholder '${{{name}}}': a name is letters, digits "
                                 "and '_'", line, at)
            if name not in self.defines:
                known = f" (defined: {', '.join(sorted(self.defines))})" if self.defines else ""
                raise self.error(f"placeholder '${{{name}}}' is not defined; pass "
                                 f"defines={{'{name}': ...}}{known}", line, at)
            return self.defines[name]
        return _PLACEHOLDER_RE.sub(sub, raw)


def _unescape(src, body, line, col):
    """Decode C escapes of a quoted string's body (``col`` is the body's first column)."""
    out = bytearray()
    pos = 0
    for m in _ESCAPE_RE.finditer(body):
        out += body[pos:m.start()].encode("utf-8", "surrogatepass")
        pos = m.end()
        octal, hexa, u4, u8, other = m.groups()
        if octal is not None:
            value = int(octal, 8)
            if value > 255:
                raise src.error(f"octal escape '\\{octal}' is larger than one byte",
                                line, col + m.start())
            out.append(value)
        elif hexa is not None:
            out.append(int(hexa, 16))
        elif u4 is not None or u8 is not None:
            cp = int(u4 or u8, 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                raise src.error(f"invalid unicode escape '{m.group(0)}'", line, col + m.start())
            out += chr(cp).encode("utf-8")
        elif other in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[other]
        else:
            raise src.error(f"invalid escape sequence '\\{other}' in string", line,
                            col + m.start())
    out += body[pos:].encode("utf-8", "surrogatepass")
    return bytes(out)


def _string_value(src, raw, line, col):
    """Bytes of one quoted string token ``raw``; placeholder values are taken verbatim."""
    body, bcol = raw[1:-1], col + 1
    out = bytearray()
    pos = 0
    for m in _PLACEHOLDER_RE.finditer(body):
        out += _unescape(src, body[pos:m.start()], line, bcol + pos)
        out += src.fill(m.group(0), line, bcol + m.start(), in_string=True).encode("utf-8")
        pos = m.end()
    out += _unescape(src, body[pos:], line, bcol + pos)
    return bytes(out)


def tokenize(text, path="<string>", defines=None):
    """The list of Tokens of ``text`` (ending with one "eof" token); raises PrototxtError."""
    src = _Source(text, path, defines)
    tokens = []
    line, line_start, pos, n = 1, 0, 0, len(text)
    match = _TOKEN_RE.match
    while pos < n:
        m = match(text, pos)
        col = pos - line_start + 1
        if m is None:
            ch = text[pos]
            if ch in "\"'":
                raise src.error("unterminated string (a string must close on its own line)",
                                line, col)
            if ch == "$":
                raise src.error("malformed placeholder: expected ${NAME}", line, col)
            raise src.error(f"unexpected character {ch!r}", line, col)
        kind = m.lastgroup
        raw = m.group(kind)
        pos = m.end()
        if kind == "nl":
            line, line_start = line + 1, pos
        elif kind == "word":
            value = src.fill(raw, line, col) if "${" in raw else raw
            if not value or any(c.isspace() or c in "{}<>:,;[]#\"'" for c in value):
                raise src.error(f"'{raw}' expands to {value!r}, which is not a single value",
                                line, col)
            tokens.append(Token("word", value, line, col, raw))
        elif kind == "string":
            value = _string_value(src, raw, line, col)
            prev = tokens[-1] if tokens else None
            if prev is not None and prev.kind == "string":    # "a" "b" is "ab"
                tokens[-1] = prev._replace(value=prev.value + value, text=prev.text + " " + raw)
            else:
                tokens.append(Token("string", value, line, col, raw))
        elif kind == "sym":
            tokens.append(Token("sym", raw, line, col, raw))
    tokens.append(Token("eof", None, line, pos - line_start + 1, "end of file"))
    return tokens
