"""Which dialect a .caffemodel is written in, decided from evidence in the bytes.

BVLC V1 and DeepLab v1 files share ``NetParameter.layers = 2`` but give some numbers different
meanings (the clashes are listed in docs/caffe_formats.md), so decoding with the wrong table
silently changes type names and hole/dilation values.  The scan below reads only field numbers
and small varints (never blob data) and collects evidence for each side:

  DeepLab v1: a layer type 40..56; a layer field 43..59 or strict_dim (1003); field 42 on a
              SEG_ACCURACY layer; ConvolutionParameter hole (17) > 1 or hole_w (19);
              type 39 with image_data_param (IMAGE_SEG_DATA).
  BVLC:       the V2 field ``layer = 100``; field 42 (loss_param) on another layer type;
              ConvolutionParameter 18 without 19 or repeated (dilation); PoolingParameter
              round_mode (13); BlobProto shape / double_data / double_diff (7..9);
              type 39 with convolution_param (DECONVOLUTION).

One side only decides; no evidence at all means both tables read the file identically (BVLC is
used); evidence for both sides, or a type-39 layer that nothing explains, is ambiguous and raises
asking for an explicit schema.
"""
from ..errors import CaffeError
from ..proto import wire
from ..proto.layer_types import DEEPLAB_V1_TYPES
from ..proto.schema import get_schema

# DeepLab v1's own LayerType values (39..56), from its schema table.
DL1_TYPES = {number: name for name, number in
             get_schema("deeplab_v1").enums["LayerParameter.LayerType"].items()
             if name in DEEPLAB_V1_TYPES}
# DeepLab-Context's caffe.proto numbers, also those of parameters our table does not hold (49..59).
DL1_LAYER_FIELDS = {
    43: "interp_param", 44: "softmaxloss_param", 45: "padding_param", 46: "mat_write_param",
    47: "mat_read_param", 48: "dense_crf_param", 49: "dominant_channel_param",
    50: "bias_channel_param", 51: "unique_label_param", 52: "censor_label_param",
    53: "adaptive_bias_channel_param", 54: "channel_aggregator_param",
    55: "ignore_overlay_param", 56: "histogram_param", 57: "euclidean_loss_param",
    58: "gain_channel_param", 59: "onehot_param", 1003: "strict_dim"}


class Detection:
    """``format`` ("v1"/"v2"), ``schema`` ("bvlc"/"deeplab_v1"), ``reason`` (one line), and the
    evidence lists behind it."""

    def __init__(self, format, schema, reason, deeplab=(), bvlc=()):
        self.format, self.schema, self.reason = format, schema, reason
        self.deeplab_evidence, self.bvlc_evidence = list(deeplab), list(bvlc)

    def __repr__(self):
        return f"Detection({self.format!r}, {self.schema!r}, {self.reason!r})"


def file_format(buf):
    """"v1", "v2" (or "v2" for a net without layers) from the top-level fields alone."""
    has_v1 = has_v2 = False
    for number, wt, _, key_at in wire.iter_fields(buf, path="NetParameter"):
        has_v1 |= number == 2 and wt == wire.LEN
        has_v2 |= number == 100 and wt == wire.LEN
    if has_v1 and has_v2:
        raise CaffeError("the file holds both V1 'layers' (field 2) and V2 'layer' (field 100); "
                         "Caffe refuses such a net too")
    return "v1" if has_v1 else "v2"


def _fields(buf, rng, path):
    return wire.iter_fields(buf, rng[0], rng[1], path)


def _layer_evidence(buf, rng, i, dl, bv, type39):
    path = f"NetParameter.layers[{i}]"
    name, ltype, numbers, conv, pool, blobs = "", None, set(), None, None, []
    for number, wt, value, _ in _fields(buf, rng, path):
        numbers.add(number)
        if number == 4 and wt == wire.LEN:
            name = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace")
        elif number == 5 and wt == wire.VARINT:
            ltype = value
        elif number == 10 and wt == wire.LEN:
            conv = value
        elif number == 19 and wt == wire.LEN:
            pool = value
        elif number == 6 and wt == wire.LEN:
            blobs.append(value)
    who = f"layer {i} '{name}'"
    if ltype is not None and 40 <= ltype <= 56:
        dl.append(f"{who}: type {ltype} is DeepLab's {DL1_TYPES[ltype]}")
    for n in sorted(numbers & set(DL1_LAYER_FIELDS)):
        dl.append(f"{who}: field {n} is DeepLab's {DL1_LAYER_FIELDS[n]}")
    if 42 in numbers:
        if ltype == 40:
            dl.append(f"{who}: field 42 on a SEG_ACCURACY layer is seg_accuracy_param")
        else:
            bv.append(f"{who}: field 42 on a type-{ltype} layer is BVLC's loss_param")
    if conv is not None:
        hole, n18, has19 = [], 0, False
        for number, wt, value, _ in _fields(buf, conv, path + ".convolution_param"):
            if number == 17 and wt == wire.VARINT:
                hole.append(value)
            elif number == 18:
                n18 += 1 if wt == wire.VARINT else 2
            elif number == 19:
                has19 = True
        if any(h > 1 for h in hole):
            dl.append(f"{who}: convolution_param field 17 = {max(hole)} is DeepLab's hole "
                      "(BVLC's force_nd_im2col is a bool)")
        if has19:
            dl.append(f"{who}: convolution_param field 19 is DeepLab's hole_w")
        elif n18:
            bv.append(f"{who}: convolution_param field 18 without 19 is BVLC's dilation")
    if pool is not None:
        for number, _, _, _ in _fields(buf, pool, path + ".pooling_param"):
            if number == 13:
                bv.append(f"{who}: pooling_param field 13 is BVLC's round_mode")
    for j, rng_b in enumerate(blobs):
        for number, _, _, _ in _fields(buf, rng_b, f"{path}.blobs[{j}]"):
            if number in (7, 8, 9):
                bv.append(f"{who}: BlobProto field {number} (shape/double data) is BVLC-only")
                break
    if ltype == 39:
        if 15 in numbers and 10 not in numbers:
            dl.append(f"{who}: type 39 with image_data_param is DeepLab's IMAGE_SEG_DATA")
        elif 10 in numbers and 15 not in numbers:
            bv.append(f"{who}: type 39 with convolution_param is BVLC's DECONVOLUTION")
        else:
            type39.append(who)


def detect(buf):
    """A ``Detection`` for the NetParameter in ``buf``; raises CaffeError when ambiguous."""
    fmt = file_format(buf)
    if fmt == "v2":
        return Detection("v2", "bvlc", "V2 file (NetParameter.layer = 100): BVLC schema")
    dl, bv, type39 = [], [], []
    i, budget = 0, wire.message_budget(len(buf))
    for number, wt, value, key_at in wire.iter_fields(buf, path="NetParameter"):
        if number == 2 and wt == wire.LEN:
            if i >= budget:    # the decoder would refuse the file: keep the evidence bounded too
                raise wire.too_many_messages(key_at, f"NetParameter.layers[{i}]")
            _layer_evidence(buf, value, i, dl, bv, type39)
            i += 1
    if dl and bv:
        raise CaffeError(
            "cannot tell the schema of this V1 file: DeepLab v1 evidence (" + "; ".join(dl[:3]) +
            ") and BVLC evidence (" + "; ".join(bv[:3]) + "); pass schema='bvlc' or "
            "schema='deeplab_v1' (--schema)")
    if type39 and not dl and not bv:
        raise CaffeError(
            f"cannot tell the schema of this V1 file: {type39[0]} has type 39, which is "
            "DECONVOLUTION in BVLC and IMAGE_SEG_DATA in DeepLab v1, and nothing else in the file "
            "decides; pass schema='bvlc' or schema='deeplab_v1' (--schema)")
    if dl:
        return Detection("v1", "deeplab_v1", "V1 file with DeepLab v1 evidence: " +
                         "; ".join(dl[:3]) + (f" (+{len(dl) - 3} more)" if len(dl) > 3 else ""),
                         dl, bv)
    if bv:
        return Detection("v1", "bvlc", "V1 file with BVLC-only evidence: " + "; ".join(bv[:3]),
                         dl, bv)
    return Detection("v1", "bvlc", "V1 file with no DeepLab-only field or type: BVLC and "
                     "DeepLab v1 tables read it identically (BVLC used)")
