"""Field tables (data) for every Caffe message the project reads or writes.

Contract (the table content is filled in by the proto work):
  FieldDef(number, name, type, repeated=False, packed=False, default=None, type_name=None)
    type is one of: int32 int64 uint32 uint64 sint32 sint64 bool float double string bytes
    fixed32 fixed64 enum message; type_name names the message or enum type.
  MessageDef(name, fields)  with .by_name and .by_number dicts
  Schema(name, messages, enums)   name in {"bvlc", "deeplab_v1"}
  get_schema(name) -> Schema
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass(frozen=True)
class FieldDef:
    number: int
    name: str
    type: str
    repeated: bool = False
    packed: bool = False
    default: object = None
    type_name: Optional[str] = None


@dataclass
class MessageDef:
    name: str
    fields: List[FieldDef]
    by_name: Dict[str, FieldDef] = field(init=False)
    by_number: Dict[int, FieldDef] = field(init=False)

    def __post_init__(self):
        self.by_name = {f.name: f for f in self.fields}
        self.by_number = {f.number: f for f in self.fields}


@dataclass
class Schema:
    name: str
    messages: Dict[str, MessageDef]
    enums: Dict[str, Dict[str, int]]


def get_schema(name):
    raise NotImplementedError("schema tables are being written")
