"""A decoded protobuf message, schema-agnostic.

Both the text-format parser and the binary wire codec produce ``Message`` trees:
  * scalar fields hold Python values (int, float, bool, str, bytes);
  * enum fields hold the enum value's *name* (``"MAX"``, ``"TRAIN"``);
  * nested messages are ``Message`` instances;
  * repeated fields are Python lists (also when they hold one element).
Defaults are not filled in: a field that was not written is absent (``has`` is False).  Each layer
module knows its own Caffe defaults and asks ``get(name, default)``.
"""


class Message:
    __slots__ = ("type_name", "fields", "where")

    def __init__(self, type_name, fields=None, where=None):
        self.type_name = type_name      # e.g. "ConvolutionParameter"
        self.fields = dict(fields or {})  # name -> value (list for repeated fields)
        self.where = where              # "file:line:col" of the opening token, if known

    def has(self, name):
        v = self.fields.get(name)
        return v is not None and not (isinstance(v, list) and not v)

    def get(self, name, default=None):
        v = self.fields.get(name)
        if v is None or (isinstance(v, list) and not v):
            return default
        return v

    def getlist(self, name):
        """The value as a list: [] when absent, [v] for a singular field."""
        v = self.fields.get(name)
        if v is None:
            return []
        return v if isinstance(v, list) else [v]

    def __getitem__(self, name):
        return self.fields[name]

    def __setitem__(self, name, value):
        self.fields[name] = value

    def __contains__(self, name):
        return self.has(name)

    def append(self, name, value):
        self.fields.setdefault(name, []).append(value)

    def items(self):
        return self.fields.items()

    def copy(self):
        """Deep copy (nested messages and lists are copied too)."""
        def dup(v):
            if isinstance(v, Message):
                return v.copy()
            if isinstance(v, list):
                return [dup(x) for x in v]
            return v
        return Message(self.type_name, {k: dup(v) for k, v in self.fields.items()}, self.where)

    def to_dict(self):
        def plain(v):
            if isinstance(v, Message):
                return v.to_dict()
            if isinstance(v, list):
                return [plain(x) for x in v]
            return v
        return {k: plain(v) for k, v in self.fields.items()}

    def __eq__(self, other):
        return isinstance(other, Message) and self.type_name == other.type_name and \
            self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"Message({self.type_name!r}, {self.to_dict()!r})"
