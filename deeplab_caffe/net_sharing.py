"""Caffe's parameter sharing: by ``param { name }`` inside a net (Net::AppendParam, with its
lr_mult / decay_mult merging rules) and by layer name between nets (Net::ShareTrainedLayersWith,
how a solver's test nets use the training net's weights)."""
from .errors import CaffeError, NetError


def share_params(net, layer, s, shared):
    """By-name sharing for ``layer`` (just appended to ``net``, spec ``s``): a later layer's blob
    becomes the first owner's Parameter; then the multipliers merge (``merge_mults``).
    ``shared``: param name -> (layer index, blob index) of its owner, filled as the net builds."""
    li = len(net.layers) - 1
    for i, ps in enumerate(s.param[:len(layer.blobs)]):
        if not ps or not ps.name:
            continue
        if ps.name not in shared:
            shared[ps.name] = (li, i)
            continue
        oi, oj = shared[ps.name]
        owner = net.layer_names[oi]
        owner_param, mine = net.layers[oi].blobs[oj], layer.blobs[i]
        if tuple(owner_param.shape) != tuple(mine.shape):
            if ps.share_mode == "PERMISSIVE" and owner_param.numel() == mine.numel():
                raise NetError(f"param '{ps.name}' is shared PERMISSIVE with layer '{owner}' "
                               f"under another shape ({tuple(owner_param.shape)} vs "
                               f"{tuple(mine.shape)}); only same-shape sharing is supported",
                               layer=s.name, where=s.where)
            raise NetError(f"cannot share param '{ps.name}' with layer '{owner}': shapes "
                           f"{tuple(owner_param.shape)} and {tuple(mine.shape)} differ",
                           layer=s.name, where=s.where)
        layer.blobs[i] = owner_param
        merge_mults(net, (oi, oj), ps, s)


def merge_mults(net, owner, ps, s):
    """A sharer's explicit lr_mult / decay_mult sets the owner's when the owner gave none
    (so an explicit 0 freezes it); two different explicit values are an error."""
    owner_spec = net._param_specs[owner[0]][owner[1]]
    merged = net._shared_mults.setdefault(owner, {
        "lr_mult": (owner_spec.lr_mult, owner_spec.has_lr_mult),
        "decay_mult": (owner_spec.decay_mult, owner_spec.has_decay_mult)})
    for key, value, given in (("lr_mult", ps.lr_mult, ps.has_lr_mult),
                              ("decay_mult", ps.decay_mult, ps.has_decay_mult)):
        if not given:
            continue
        current, current_given = merged[key]
        if current_given and current != value:
            raise NetError(f"shared param '{ps.name}' has mismatched {key}: {value} here, "
                           f"{current} where it was set before", layer=s.name, where=s.where)
        merged[key] = (value, True)


def share_trained_layers(net, other):
    """``net`` takes the blobs of each layer of ``other`` whose name it also has (the first
    layer of that name, as Caffe's scan); layers ``net`` lacks are skipped."""
    for name, source in zip(other.layer_names, other.layers):
        if name not in net.layer_names:
            continue
        target = net.layers[net.first_layer_index(name)]
        if len(target.blobs) != len(source.blobs):
            raise CaffeError(f"net '{net.name}' layer '{name}' has {len(target.blobs)} "
                             f"blobs, net '{other.name}' has {len(source.blobs)}")
        for j, p in enumerate(source.blobs):
            if tuple(target.blobs[j].shape) != tuple(p.shape):
                raise CaffeError(f"cannot share param {j} of layer '{name}' with net "
                                 f"'{net.name}': shapes {tuple(p.shape)} and "
                                 f"{tuple(target.blobs[j].shape)} differ")
            target.blobs[j] = p
