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
from . import mat_read  # noqa: F401,E402
from . import lstm, lstm_unit, rnn  # noqa: F401,E402  (recurrent layers)
from . import (absval, batch_norm, bias, bnll, clip, elu, exp, log,  # noqa: F401,E402
               mvn, power, prelu, scale, sigmoid, swish, tanh, threshold)
# BVLC shape layers, Deconvolution/Crop and the BVLC losses
from . import (batch_reindex, contrastive_loss, crop, deconvolution, embed,  # noqa: F401,E402
               filter, hinge_loss, im2col, infogain_loss, multinomial_logistic_loss, parameter,
               reduction, reshape, sigmoid_cross_entropy_loss, spp, tile)
# BVLC's data layers and Python layers.
from . import data, hdf5_data, image_data, python_layer  # noqa: F401,E402
from . import multi_stage_meanfield  # noqa: F401,E402  (CRF-RNN)
