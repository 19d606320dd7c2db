"""Layer type names: V1 / DeepLab v1 enum names <-> V2 type strings.

The table is ``proto/upgrade.py``'s (Caffe's ``UpgradeV1LayerType`` plus DeepLab v1's enum
values in the same CamelCase style), so text and binary files agree on every name.
"""
from ..proto.upgrade import V1_TYPE_NAMES

V1_TO_V2 = {"NONE": "", **V1_TYPE_NAMES}
V2_TO_V1 = {v2: v1 for v1, v2 in V1_TO_V2.items()}


def v2_type_name(v1_value):
    """The V2 type string of a decoded V1 ``type`` (an enum name, or an int the schema lacks)."""
    if isinstance(v1_value, str):
        return V1_TO_V2.get(v1_value, v1_value)
    return f"V1Type{v1_value}"   # a number the chosen schema does not know
