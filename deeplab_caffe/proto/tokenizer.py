"""Tokenizer for protobuf text format as Caffe files use it, with DeepLab's ``${NAME}`` templates.

``tokenize`` returns a ``Tokens`` sequence of ``Token(kind, value, line, col, text)``:
  kind "word"   identifiers and numbers (value: the text after filling placeholders)
  kind "string" one or more adjacent quoted strings, concatenated (value: bytes, escapes decoded)
  kind "sym"    one of ``{ } < > : , ; [ ]``
  kind "eof"    end of input
``line`` and ``col`` (1-based) are where the token starts in the file as written, so placeholders
never shift reported positions.  Placeholders are filled from ``defines`` the way DeepLab's run
scripts fill them with sed (plain text), except inside comments, which are skipped first.
"""
import re
from array import array
from collections import namedtuple
from collections.abc import Sequence

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
    if "\\" not in body and "${" not in body:
        return body.encode("utf-8", "surrogatepass")
    out = bytearray()
    pos = 0
    for m in _PLACEHOLDER_RE.finditer(body):
        out += _unescape(src, body[pos:m.start()], line, bcol + pos)
        out += src.fill(m.group(0), line, bcol + m.start(), in_string=True).encode("utf-8")
        pos = m.end()
    out += _unescape(src, body[pos:], line, bcol + pos)
    return bytes(out)


_WORD, _STRING, _SYM, _EOF = range(4)


class Tokens(Sequence):
    """The tokens of one text, kept compactly: per token its kind (1 byte), the start and end of
    its text (for adjacent strings, of all of them) and its line; per line its start.  A
    ``Token`` is built when it is asked for, so a file of N bytes costs a small multiple of N
    (a list of namedtuples cost ~80x).  Indexing as a list of ``Token``."""

    def __init__(self, src, size):
        self.src = src
        offsets = "q" if size >= 1 << 31 else "i"
        self.kinds = bytearray()
        self.starts, self.ends = array(offsets), array(offsets)
        self.lines = array("i")
        self.line_starts = array(offsets, [0])
        self._cache = {}

    def __len__(self):
        return len(self.kinds)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        tok = self._cache.get(i)
        if tok is None:
            if not 0 <= i < len(self.kinds):
                raise IndexError("token index out of range")
            if len(self._cache) >= 16:      # callers look a few tokens around the current one
                self._cache.clear()
            tok = self._cache[i] = self._build(i)
        return tok

    def is_sym(self, i, sym):
        """Whether token ``i`` is the symbol ``sym`` (without building the Token)."""
        return self.kinds[i] == _SYM and self.src.text[self.starts[i]] == sym

    def _build(self, i):
        kind, start, end, line = self.kinds[i], self.starts[i], self.ends[i], self.lines[i]
        col = start - self.line_starts[line - 1] + 1
        text = self.src.text
        if kind == _EOF:
            return Token("eof", None, line, col, "end of file")
        raw = text[start:end]
        if kind == _SYM:
            return Token("sym", raw, line, col, raw)
        if kind == _WORD:
            return Token("word", self.src.fill(raw, line, col) if "${" in raw else raw, line,
                         col, raw)
        if _TOKEN_RE.match(text, start).end() == end:     # one string, not adjacent ones
            return Token("string", _string_value(self.src, raw, line, col), line, col, raw)
        pieces, values = [], []
        for m, pline, pcol in _scan(text, start, end, line, self.line_starts[line - 1]):
            if m.lastgroup == "string":
                pieces.append(m.group())
                values.append(_string_value(self.src, m.group(), pline, pcol))
        return Token("string", b"".join(values), line, col, " ".join(pieces))


def _scan(text, pos, end, line, line_start):
    """(match, line, col) of each lexeme of ``text[pos:end]`` (which must lex cleanly)."""
    match = _TOKEN_RE.match
    while pos < end:
        m = match(text, pos)
        yield m, line, pos - line_start + 1
        pos = m.end()
        if m.lastgroup == "nl":
            line, line_start = line + 1, pos


def tokenize(text, path="<string>", defines=None):
    """The ``Tokens`` of ``text`` (ending with one "eof" token); raises PrototxtError.

    Linear in time and memory: adjacent strings are one token spanning them all, its value
    joined once when asked for."""
    src = _Source(text, path, defines)
    tokens = Tokens(src, len(text))
    kinds, starts, ends, lines = tokens.kinds, tokens.starts, tokens.ends, tokens.lines
    add_kind, add_start, add_end, add_line = kinds.append, starts.append, ends.append, lines.append
    line_starts = tokens.line_starts
    line, line_start, pos, n = 1, 0, 0, len(text)
    match = _TOKEN_RE.match
    last_string = -1      # index of the previous token when it is a string
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
        start, pos = pos, m.end()
        if kind == "nl":
            line, line_start = line + 1, pos
            line_starts.append(pos)
        elif kind == "word":
            raw = m.group(kind)
            if "${" in raw:
                value = src.fill(raw, line, col)
                if not value or any(c.isspace() or c in "{}<>:,;[]#\"'" for c in value):
                    raise src.error(f"'{raw}' expands to {value!r}, which is not a single "
                                    "value", line, col)
            add_kind(_WORD), add_start(start), add_end(pos), add_line(line)
            last_string = -1
        elif kind == "string":
            _string_value(src, m.group(kind), line, col)     # its errors, raised now
            if last_string >= 0:                             # "a" "b" is "ab"
                ends[last_string] = pos
            else:
                last_string = len(kinds)
                add_kind(_STRING), add_start(start), add_end(pos), add_line(line)
        elif kind == "sym":
            add_kind(_SYM), add_start(start), add_end(pos), add_line(line)
            last_string = -1
    add_kind(_EOF), add_start(pos), add_end(pos), add_line(line)
    return tokens
