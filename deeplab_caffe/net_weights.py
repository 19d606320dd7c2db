"""A Net's learnable blobs in and out: what ``Net.copy_from`` (Caffe's CopyTrainedLayersFrom:
match by layer name, check shapes as Blob::ShapeEquals, DeepLab's strict_dim) and ``Net.save``
do.  The file formats are ``deeplab_caffe.io``'s (``read_weights`` / ``write_weights``)."""
import logging
import os

import numpy as np
import torch

from .errors import NetError
from .io import read_weights, write_weights

log = logging.getLogger("deeplab_caffe.net")


def shared_blobs(net):
    """{(layer index, blob index)} of the blobs a layer shares from an earlier owner (``param
    { name }``): Caffe's param_owners_ != -1."""
    seen, shared = set(), set()
    for li, layer in enumerate(net.layers):
        for j, p in enumerate(layer.blobs):
            if id(p) in seen:
                shared.add((li, j))
            seen.add(id(p))
    return shared


def copy_trained_layers_from(net, path, allow_reshape=False, schema="auto"):
    """Copy blobs by layer name from ``path`` into ``net``; returns the names of the layers
    copied.  See Net.copy_from.  As Caffe, each layer of a binary file goes to the first net
    layer of its name (with duplicate names the later ones keep their fillers), each layer of
    an HDF5 file to the last (CopyTrainedLayersFromHDF5 looks names up in layer_names_index_,
    where later layers overwrite earlier ones)."""
    model = read_weights(str(path), schema)
    hdf5 = model.format == "hdf5"
    shared = shared_blobs(net) if hdf5 else set()
    copied = []
    for src in model.layers:
        target = net.last_layer_index(src.name) if hdf5 else net.first_layer_index(src.name)
        if target is None:
            log.info("Ignoring source layer %s", src.name)
            continue
        layer = net.layers[target]
        if all(b is None for b in src.blobs):
            continue
        if len(src.blobs) > len(layer.blobs) or (not hdf5 and len(src.blobs) != len(layer.blobs)):
            raise NetError(f"the weight file has {len(src.blobs)} blob(s) for this layer but the "
                           f"net has {len(layer.blobs)} ({path})", layer=src.name)
        strict = layer.spec.strict_dim and not allow_reshape
        for i, param in enumerate(layer.blobs):
            arr = src.blobs[i] if i < len(src.blobs) else None
            if arr is None:
                # HDF5 only: Caffe writes a shared blob under its owner alone.
                if (target, i) in shared:
                    continue
                raise NetError(f"the weight file has no blob {i} for this layer ({path})",
                               layer=src.name)
            _copy_blob(src, i, arr, param, strict, path)
        copied.append(src.name)
    return copied


def _copy_blob(src, i, arr, param, strict, path):
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


def _disk_shape(src, i, arr):
    shapes = getattr(src, "disk_shapes", None)
    return tuple(shapes[i]) if shapes else tuple(arr.shape)


class _SavedLayer:
    def __init__(self, name, type_name, blobs, spec, diffs):
        self.name, self.type_name, self.type, self.blobs, self.spec, self.diffs = \
            name, type_name, type_name, blobs, spec, diffs


def native_format(net):
    """The .caffemodel format of the Caffe that reads ``net``'s prototxt: "v1" for a net written
    in V1 or DeepLab v1 syntax (DeepLab's Caffe writes V1 `layers`), else "v2"."""
    return "v1" if getattr(net.spec, "dialect", "v2") in ("v1", "deeplab_v1") else "v2"


def _numpy(t):
    return t.detach().to("cpu", torch.float32).numpy()


def save_net_weights(net, path, format="v2", diffs=None):
    """Write ``net``'s learnable blobs: .pt -> {"<layer>.<i>": tensor}; format "hdf5" (or a
    name ending in .h5) -> Caffe's HDF5 layout (every layer; a shared blob only under its
    owner, as Net::ToHDF5); otherwise a .caffemodel in ``format`` "v2" (BVLC; every layer, as
    Caffe's snapshots) or "v1" (old Caffe / DeepLab v1; only layers with blobs, since V1 has no
    enum for newer types such as Input).  diffs: {id(parameter): tensor} written as the blobs'
    diffs (zeros for a parameter not in it) in the .caffemodel formats, as snapshot_diff does;
    None writes none."""
    hdf5 = format == "hdf5" or os.fspath(path).endswith(".h5")
    shared = shared_blobs(net) if hdf5 else set()
    layers = []
    for li, (name, layer) in enumerate(zip(net.layer_names, net.layers)):
        if format == "v1" and not len(layer.blobs):
            continue
        blobs = [None if (li, j) in shared else _numpy(p) for j, p in enumerate(layer.blobs)]
        diff = None if diffs is None else \
            [_numpy(diffs.get(id(p), torch.zeros_like(p))) for p in layer.blobs]
        layers.append(_SavedLayer(name, layer.type_name, blobs, layer.spec, diff))
    return write_weights(str(path), layers, format=format, name=net.name)
