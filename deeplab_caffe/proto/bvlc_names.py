"""Names that exist in BVLC Caffe (master, src/caffe/proto/caffe.proto and the layer registry)
but that deeplab_caffe does not implement: the one home for telling "real Caffe, not supported
here" from a typo in error messages.

The schema tables (``_tables_bvlc.py``) hold every field of the messages they list; these are
the fields of BVLC's LayerParameter / V1LayerParameter whose parameter messages are not tabled
because no layer here reads them.
"""

# Every type name BVLC master's layer factory registers (REGISTER_LAYER_CLASS /
# REGISTER_LAYER_CREATOR), V2 spelling.
BVLC_LAYER_TYPES = frozenset("""
AbsVal Accuracy ArgMax BatchNorm BatchReindex Bias BNLL Clip Concat ContrastiveLoss Convolution
Crop Data Deconvolution Dropout DummyData Eltwise ELU Embed EuclideanLoss Exp Filter Flatten
HDF5Data HDF5Output HingeLoss Im2col ImageData InfogainLoss InnerProduct Input Log LRN LSTM
LSTMUnit MemoryData MultinomialLogisticLoss MVN Parameter Pooling Power PReLU Python Reduction
ReLU Reshape RNN Scale Sigmoid SigmoidCrossEntropyLoss Silence Slice Softmax SoftmaxWithLoss
Split SPP Swish TanH Threshold Tile WindowData
""".split())

# Fields of BVLC master's messages that the tables leave out (their messages are not tabled).
BVLC_UNTABLED_FIELDS = {
    "LayerParameter": frozenset("""
        window_data_param""".split()),
    "V1LayerParameter": frozenset("""
        window_data_param layer""".split()),
}


def bvlc_field_note(field, message_name, schema_name):
    """A sentence for an unknown ``field`` of ``message_name`` (in schema ``schema_name``) that
    is a real BVLC Caffe field; None when BVLC has no such field (a typo, or another fork's)."""
    from .schema import get_schema
    # DeepLab v1's LayerParameter is BVLC's V1LayerParameter with DeepLab's additions.
    bvlc_name = "V1LayerParameter" if (schema_name == "deeplab_v1" and
                                       message_name == "LayerParameter") else message_name
    tabled = get_schema("bvlc").messages.get(bvlc_name)
    if field in BVLC_UNTABLED_FIELDS.get(bvlc_name, ()):
        return (f"'{field}' is a BVLC Caffe field of {bvlc_name} that deeplab_caffe does not "
                "implement")
    if schema_name == "deeplab_v1" and tabled is not None and field in tabled.by_name:
        return (f"'{field}' is a BVLC Caffe field of {bvlc_name} that DeepLab v1's caffe.proto "
                "does not have (a file uses one dialect)")
    return None


def unsupported_type_note(type_name):
    """A sentence for a layer type deeplab_caffe lacks but BVLC Caffe or DeepLab v1 has, else
    None."""
    from .layer_types import DEEPLAB_V1_ONLY
    if type_name in BVLC_LAYER_TYPES:
        return f"'{type_name}' is a BVLC Caffe layer type that deeplab_caffe does not implement"
    if type_name in DEEPLAB_V1_ONLY:
        return f"'{type_name}' is a DeepLab v1 layer type that deeplab_caffe does not implement"
    return None
