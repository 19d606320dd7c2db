"""Layer type names across the dialects: V1 enum names (BVLC's V1LayerParameter.LayerType and
DeepLab v1's LayerParameter.LayerType) and the V2 type strings they upgrade to.

Text and binary files share these tables, so a prototxt and a .caffemodel always agree on a name.
"""

# BVLC's UpgradeV1LayerType (src/caffe/util/upgrade_proto.cpp), then DeepLab v1's own enum values
# named in the same CamelCase style.
V1_TYPE_NAMES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
    # deeplab-public v1
    "IMAGE_SEG_DATA": "ImageSegData", "SEG_ACCURACY": "SegAccuracy", "INTERP": "Interp",
    "PADDING": "Padding", "MAT_WRITE": "MatWrite", "MAT_READ": "MatRead", "DENSE_CRF": "DenseCRF",
    "DOMINANT_CHANNEL": "DominantChannel", "BIAS_CHANNEL": "BiasChannel",
    "UNIQUE_LABEL": "UniqueLabel", "CENSOR_LABEL": "CensorLabel",
    "ADAPTIVE_BIAS_CHANNEL": "AdaptiveBiasChannel", "CHANNEL_AGGREGATOR": "ChannelAggregator",
    "IGNORE_OVERLAY": "IgnoreOverlay", "HISTOGRAM": "Histogram", "RELATIVE_ERROR": "RelativeError",
    "GAIN_CHANNEL": "GainChannel", "ONEHOT": "OneHot",
}

# Enum names that only DeepLab v1's LayerType has (its values 39..56; BVLC's 39 is DECONVOLUTION).
DEEPLAB_V1_TYPES = frozenset([
    "IMAGE_SEG_DATA", "SEG_ACCURACY", "INTERP", "PADDING", "MAT_WRITE", "MAT_READ", "DENSE_CRF",
    "DOMINANT_CHANNEL", "BIAS_CHANNEL", "UNIQUE_LABEL", "CENSOR_LABEL", "ADAPTIVE_BIAS_CHANNEL",
    "CHANNEL_AGGREGATOR", "IGNORE_OVERLAY", "HISTOGRAM", "RELATIVE_ERROR", "GAIN_CHANNEL",
    "ONEHOT"])
# ... and the same types by their V2 names.
DEEPLAB_V1_ONLY = frozenset(V1_TYPE_NAMES[k] for k in DEEPLAB_V1_TYPES)

V1_TO_V2 = {"NONE": "", **V1_TYPE_NAMES}
V2_TO_V1 = {v2: v1 for v1, v2 in V1_TO_V2.items()}


def v2_type_name(v1_value):
    """The V2 type string of a decoded V1 ``type`` (an enum name, or an int the schema lacks)."""
    if isinstance(v1_value, str):
        return V1_TO_V2.get(v1_value, v1_value)
    return f"V1Type{v1_value}"   # a number the chosen schema does not know
