"""Optional oracle: Google's protobuf runtime reads what we write, and we read what it writes
(skipped without the protobuf package)."""
import os

import numpy as np
import pytest

from deeplab_caffe.io import decode_net, read_caffemodel, write_caffemodel, write_solverstate
from deeplab_caffe.proto import wire
from deeplab_caffe.proto.message import Message
from deeplab_caffe.proto.schema import get_schema

from caffemodel_util import FIX, dl1_bytes


def _google_classes(schema):
    """Message classes built at run time from our schema tables (no protoc, no .proto file)."""
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    F = descriptor_pb2.FieldDescriptorProto
    types = {"int32": F.TYPE_INT32, "int64": F.TYPE_INT64, "uint32": F.TYPE_UINT32,
             "uint64": F.TYPE_UINT64, "sint32": F.TYPE_SINT32, "sint64": F.TYPE_SINT64,
             "bool": F.TYPE_BOOL, "float": F.TYPE_FLOAT, "double": F.TYPE_DOUBLE,
             "string": F.TYPE_STRING, "bytes": F.TYPE_BYTES, "fixed32": F.TYPE_FIXED32,
             "fixed64": F.TYPE_FIXED64, "sfixed32": F.TYPE_SFIXED32,
             "sfixed64": F.TYPE_SFIXED64, "enum": F.TYPE_ENUM, "message": F.TYPE_MESSAGE}
    flat = lambda n: n.replace(".", "_")  # noqa: E731
    fdp = descriptor_pb2.FileDescriptorProto(name=f"oracle_{schema.name}.proto",
                                             package="oracle", syntax="proto2")
    for ename, values in schema.enums.items():
        e = fdp.enum_type.add(name=flat(ename))
        for k, v in sorted(values.items(), key=lambda kv: kv[1]):
            e.value.add(name=f"{flat(ename)}__{k}", number=v)   # enum values share one scope
    for mdef in schema.messages.values():
        m = fdp.message_type.add(name=flat(mdef.name))
        for fd in mdef.fields:
            f = m.field.add(name=fd.name, number=fd.number, type=types[fd.type],
                            label=F.LABEL_REPEATED if fd.repeated else F.LABEL_OPTIONAL)
            if fd.type_name:
                f.type_name = ".oracle." + flat(fd.type_name)
            if fd.packed:
                f.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return lambda name: message_factory.GetMessageClass(
        pool.FindMessageTypeByName("oracle." + flat(name)))


def _plain_google(msg):
    out = {}
    for fd, value in msg.ListFields():
        conv = (_plain_google if fd.message_type is not None else
                (lambda v, fd=fd: fd.enum_type.values_by_number[v].name.split("__", 1)[1])
                if fd.enum_type is not None else (lambda v: v))
        out[fd.name] = [conv(v) for v in value] if fd.is_repeated else conv(value)
    return out


def _plain_ours(msg):
    def plain(v):
        if isinstance(v, Message):
            return _plain_ours(v)
        if isinstance(v, np.ndarray):
            return v.astype(np.float64).tolist()
        return [plain(x) for x in v] if isinstance(v, list) else v
    return {k: plain(v) for k, v in msg.fields.items()}


@pytest.mark.parametrize("case", ["dl1_v1", "dl1_as_v2", "lenet_v2", "lenet_v1",
                                  "solverstate", "fixture_v1", "fixture_v2"])
def test_google_protobuf_oracle(case, tmp_path):
    buf, _ = dl1_bytes()
    if case.startswith(("lenet", "fixture")):
        if not os.path.isdir(FIX):
            pytest.skip("no fixtures")
        model = read_caffemodel(os.path.join(FIX, "v2/lenet_iter_10000.caffemodel"))
    else:
        model = decode_net(buf)
    if case.startswith("fixture"):
        rel = "v1/cifar10_quick_iter_5000.caffemodel" if case.endswith("v1") else \
            "v2/lenet_iter_10000.caffemodel"
        data, schema_name, top = open(os.path.join(FIX, rel), "rb").read(), "bvlc", "NetParameter"
    elif case == "solverstate":
        rng = np.random.default_rng(3)
        hist = [rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal(4)]
        write_solverstate(tmp_path / "s", -5, "x.caffemodel", hist, 2)
        data, schema_name, top = (tmp_path / "s").read_bytes(), "bvlc", "SolverState"
    else:
        fmt = "v1" if case.endswith("v1") else "v2"
        write_caffemodel(tmp_path / "m", model, format=fmt)
        data = (tmp_path / "m").read_bytes()
        schema_name = "deeplab_v1" if case == "dl1_v1" else "bvlc"
        top = "NetParameter"
    schema = get_schema(schema_name)
    cls = _google_classes(schema)(top)
    g = cls()
    g.ParseFromString(data)
    ours = wire.decode(data, schema, top)
    assert _plain_google(g) == _plain_ours(ours)
    # ... and we read Google's own serialization of it identically.
    assert wire.messages_equal(wire.decode(g.SerializeToString(), schema, top), ours)
