"""Evaluation: VOC segmentation scores, the paper's trimap band, pictures, and the test loops.

    from deeplab_caffe.eval import confusion_matrix, scores, ConfusionMeter, trimap_miou
    conf = confusion_matrix(pred, label, num_classes=21)      # rows = ground truth
    s = scores(conf)                                          # pixel_acc, mean_acc, iou, miou

Modules: metrics (confusion matrix, scores), trimap (band around void pixels), palette (VOC
colours, overlays, panels), plots (PIL line plot and heat map), netutil (a DeepLab test
net's placeholders and score blobs), testing (DeepLab's test phase over a list), inference
(segmenting images of any size), crf_search (the CRF cross-validation).  The last three import the net machinery
when used.
"""
from .metrics import (ConfusionMeter, confusion_matrix, evaluate, format_table,  # noqa: F401
                      result_json, scores)
from .palette import colorize, colourize, overlay, panel  # noqa: F401
from .trimap import TrimapMeter, trimap_mask, trimap_miou, void_distance  # noqa: F401
from ..data.voc import VOC_CLASSES, voc_palette  # noqa: F401
