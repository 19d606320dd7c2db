"""Caffe's protobuf formats: schema tables, the prototxt parser/writer and the dialect upgrade.

    from deeplab_caffe.proto import parse_net, parse, parse_file, to_text, get_schema
    spec = parse_net("train.prototxt", defines={"NUM_LABELS": 21})   # NetSpec, any dialect
"""
from .message import Message  # noqa: F401
from .schema import FieldDef, MessageDef, Schema, get_schema  # noqa: F401
from .spec import LayerSpec, NetSpec, ParamSpec  # noqa: F401
from .text_format import parse, parse_file, parse_net, parse_tokens  # noqa: F401
from .text_writer import to_text  # noqa: F401
from .tokenizer import tokenize  # noqa: F401
from .upgrade import detect_dialect, net_to_text, parse_net_text, upgrade_net  # noqa: F401
