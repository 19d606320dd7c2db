"""pycaffe's ``caffe_pb2``: real protobuf message classes built at run time from our schema tables.

The file descriptor is made with protobuf's descriptor pool from
``proto.schema.get_schema("bvlc")``, so field numbers have one home (``proto/_tables_bvlc.py``).
The package is ``caffe`` and the file ``caffe.proto``, as Caffe's generated module has it, so
type names (``caffe.NetParameter``) and text/binary formats are the ones pycaffe scripts see.
protobuf is needed by this package only.
"""
import types

from ..proto.schema import get_schema

_SCALAR_TYPE = {
    "double": 1, "float": 2, "int64": 3, "uint64": 4, "int32": 5, "fixed64": 6, "fixed32": 7,
    "bool": 8, "string": 9, "message": 11, "bytes": 12, "uint32": 13, "enum": 14,
    "sfixed32": 15, "sfixed64": 16, "sint32": 17, "sint64": 18}
_LABEL_OPTIONAL, _LABEL_REPEATED = 1, 3


def _default_text(fdef):
    # FieldDescriptorProto.default_value is text: enum value names, "true"/"false", numbers.
    if fdef.type == "bool":
        return "true" if fdef.default else "false"
    if fdef.type in ("float", "double"):
        return repr(float(fdef.default))
    return str(fdef.default)


def _file_descriptor_proto(schema, package):
    from google.protobuf import descriptor_pb2
    fdp = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package,
                                             syntax="proto2")
    messages = {}
    for name in schema.messages:
        messages[name] = fdp.message_type.add(name=name)
    for ename, values in schema.enums.items():
        owner, _, short = ename.rpartition(".")
        target = messages[owner].enum_type.add(name=short) if owner else \
            fdp.enum_type.add(name=short)
        for vname, number in sorted(values.items(), key=lambda kv: kv[1]):
            target.value.add(name=vname, number=number)
    for name, mdef in schema.messages.items():
        for f in mdef.fields:
            fd = messages[name].field.add(name=f.name, number=f.number,
                                          type=_SCALAR_TYPE[f.type],
                                          label=_LABEL_REPEATED if f.repeated else
                                          _LABEL_OPTIONAL)
            if f.type_name:
                fd.type_name = f".{package}.{f.type_name}"
            if f.packed:
                fd.options.packed = True
            if f.default is not None and not f.repeated:
                fd.default_value = _default_text(f)
    return fdp


def _build_module(schema_name, package, module_name):
    """A module like protoc's ``*_pb2`` for one of our schemas, in its own descriptor pool."""
    from google.protobuf import descriptor_pool, message_factory
    schema = get_schema(schema_name)
    pool = descriptor_pool.DescriptorPool()
    file_desc = pool.Add(_file_descriptor_proto(schema, package))
    fdesc = pool.FindFileByName(f"{package}.proto") if file_desc is None else file_desc
    module = types.ModuleType(module_name, f"message classes of our {schema_name!r} schema")
    module.DESCRIPTOR = fdesc
    for name, desc in fdesc.message_types_by_name.items():
        setattr(module, name, message_factory.GetMessageClass(desc))
    for name, edesc in fdesc.enum_types_by_name.items():
        from google.protobuf.internal import enum_type_wrapper
        setattr(module, name, enum_type_wrapper.EnumTypeWrapper(edesc))
        for v in edesc.values:
            setattr(module, v.name, v.number)
    return module


caffe_pb2 = _build_module("bvlc", "caffe", "caffe_pb2")
# The V2 text form our zoo nets upgrade to (net_to_text): BVLC plus DeepLab v1's layer
# parameters under private field numbers.  Text only: its binary form is no file format.
normalized_pb2 = _build_module("normalized", "deeplab_caffe", "normalized_pb2")
