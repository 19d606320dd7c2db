"""Imports every layer module so that each registers its type (add new modules here)."""
# noqa: F401
from . import dummy_data, image_seg_data, input, memory_data  # noqa: F401,E402
from . import (accuracy, concat, dropout, eltwise, euclidean_loss, flatten,  # noqa: F401,E402
               inner_product, interp, lrn, mat_write, padding, pooling, relu, seg_accuracy,
               silence, slice, softmax, softmax_loss, split)
from . import dense_crf  # noqa: F401,E402
from . import convolution  # noqa: F401,E402
from . import (adaptive_bias_channel, argmax, bias_channel, censor_label,  # noqa: F401,E402
               channel_aggregator, dominant_channel, gain_channel, histogram, ignore_overlay,
               onehot, relative_error, unique_label)
# data helper (issue 14): BVLC's data layers and Python layers.
from . import data, hdf5_data, image_data, python_layer  # noqa: F401,E402
