"""Wire-format constants shared by the decoder (``wire.py``) and the encoder (``wire_encode.py``)."""
import numpy as np

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5

_WIRE_OF = {
    "int32": VARINT, "int64": VARINT, "uint32": VARINT, "uint64": VARINT, "sint32": VARINT,
    "sint64": VARINT, "bool": VARINT, "enum": VARINT,
    "fixed32": I32, "sfixed32": I32, "float": I32,
    "fixed64": I64, "sfixed64": I64, "double": I64,
    "string": LEN, "bytes": LEN, "message": LEN,
}
# Fixed-width scalar types and their little-endian numpy dtype.
_FIXED_DTYPE = {"float": "<f4", "double": "<f8", "fixed32": "<u4", "sfixed32": "<i4",
                "fixed64": "<u8", "sfixed64": "<i8"}
_NATIVE = {"float": np.float32, "double": np.float64, "fixed32": np.uint32,
           "sfixed32": np.int32, "fixed64": np.uint64, "sfixed64": np.int64}
_STRUCT = {"float": "<f", "double": "<d", "fixed32": "<I", "sfixed32": "<i", "fixed64": "<Q",
           "sfixed64": "<q"}
_MASK64 = (1 << 64) - 1
