"""A Net's learnable blobs in and out: what ``Net.copy_from`` (Caffe's CopyTrainedLayersFrom:
match by layer name, check shapes as Blob::ShapeEquals, DeepLab's strict_dim) and ``Net.save``
do.  The file formats are ``deeplab_caffe.io``'s (``read_weights`` / ``write_weights``)."""
import logging

import numpy as np
import torch

from .errors import NetError
from .io import read_weights, write_weights

log = logging.getLogger("deeplab_caffe.net")


def copy_trained_layers_from(net, path, allow_reshape=False, schema="auto"):
    """Copy blobs by layer name from ``path`` into ``net``; returns the names of the layers
    copied.  See Net.copy_from.  As Caffe, each file layer goes to the first net layer of its
    name: with duplicate names the later ones keep their fillers."""
    model = read_weights(str(path), schema)
    copied = []
    for src in model.layers:
        target = net.first_layer_index(src.name)
        if target is None:
            log.info("Ignoring source layer %s", src.name)
            continue
        layer = net.layers[target]
        if not len(src.blobs):
            continue
        if len(src.blobs) != len(layer.blobs):
            raise NetError(f"the weight file has {len(src.blobs)} blob(s) for this layer but the "
                           f"net has {len(layer.blobs)} ({path})", layer=src.name)
        strict = layer.spec.strict_dim and not allow_reshape
        for i, (arr, param) in enumerate(zip(src.blobs, layer.blobs)):
            target = tuple(param.shape)
            same = src.shape_equals(i, target) if hasattr(src, "shape_equals") \
                else tuple(arr.shape) == target
            if not same:
                if strict or arr.size != param.numel():
                    what = "" if strict else " and the element counts differ"
                    hint = (" (the layer has strict_dim: false, but the element counts differ)"
                            if not strict else
                            "; strict_dim: false in the prototxt or allow_reshape=True loads a "
                            "blob with the same element count")
                    raise NetError(f"blob {i} has shape {_disk_shape(src, i, arr)} in {path} but "
                                   f"the net expects {target}{what if not strict else ''}{hint}",
                                   layer=src.name)
                log.info("layer %s blob %d reshaped from %s to %s", src.name, i,
                         _disk_shape(src, i, arr), target)
            with torch.no_grad():
                param.copy_(torch.from_numpy(np.ascontiguousarray(arr)).reshape(target))
        copied.append(src.name)
    return copied


def _disk_shape(src, i, arr):
    shapes = getattr(src, "disk_shapes", None)
    return tuple(shapes[i]) if shapes else tuple(arr.shape)


class _SavedLayer:
    def __init__(self, name, type_name, blobs, spec):
        self.name, self.type_name, self.type, self.blobs, self.spec = \
            name, type_name, type_name, blobs, spec


def native_format(net):
    """The .caffemodel format of the Caffe that reads ``net``'s prototxt: "v1" for a net written
    in V1 or DeepLab v1 syntax (DeepLab's Caffe writes V1 `layers`), else "v2"."""
    return "v1" if getattr(net.spec, "dialect", "v2") in ("v1", "deeplab_v1") else "v2"


def save_net_weights(net, path, format="v2"):
    """Write ``net``'s learnable blobs: .pt -> {"<layer>.<i>": tensor}; otherwise a .caffemodel
    in ``format`` "v2" (BVLC; every layer, as Caffe's snapshots) or "v1" (old Caffe / DeepLab v1;
    only layers with blobs, since V1 has no enum for newer types such as Input)."""
    layers = []
    for name, layer in zip(net.layer_names, net.layers):
        if format == "v1" and not len(layer.blobs):
            continue
        blobs = [p.detach().to("cpu", torch.float32).numpy() for p in layer.blobs]
        layers.append(_SavedLayer(name, layer.type_name, blobs, layer.spec))
    return write_weights(str(path), layers, format=format, name=net.name)
