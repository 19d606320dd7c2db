"""What the evaluation tools need to know about a DeepLab test net: its placeholders and score
blobs.  (The CRF settings live in ``crf.params``, the image recovery in ``data.transform``, the
tools' flags in ``cli.flags``, the progress bar in ``log``.)

A DeepLab test prototxt ends in ``fc8_interp`` (upsampled scores) -> MAT_WRITE, optionally
-> DENSE_CRF -> ``crf_inf`` -> MAT_WRITE; the score blobs are found from that layout.
"""
import re

from ..errors import CaffeError

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(path):
    """The ``${NAME}`` placeholders a prototxt file uses, in order of first use."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise CaffeError(f"--model {path}: cannot read ({e})") from None
    return list(dict.fromkeys(_PLACEHOLDER.findall(text)))


def layers_of_type(net, type_name):
    """[(index, layer name, layer)] of the net's layers with that V2 type name."""
    return [(i, n, l) for i, (n, l) in enumerate(zip(net.layer_names, net.layers))
            if l.type_name == type_name]


def find_score_blobs(net, data_blob="data", num_classes=None, score_blob=None, crf_blob=None):
    """(score blob, CRF blob or None) of a DeepLab test net.

    The CRF blob is the top of the first DenseCRF layer and the score blob its first bottom;
    without a CRF layer, the first MatWrite bottom; else the last 4-D blob with the data
    blob's spatial size (and num_classes channels, when given).  Explicit names win."""
    crfs = layers_of_type(net, "DenseCRF")
    if crf_blob is None and crfs:
        crf_blob = net._tops[crfs[0][0]][0]
    if score_blob is None:
        if crfs:
            score_blob = net._bottoms[crfs[0][0]][0]
        else:
            writes = layers_of_type(net, "MatWrite")
            if writes:
                score_blob = net._bottoms[writes[0][0]][0]
    if score_blob is None:
        data_shape = net.blob_shapes.get(data_blob)
        for tops in reversed(net._tops):
            for t in tops:
                s = net.blob_shapes.get(t, ())
                if len(s) == 4 and t != data_blob and s[1] > 1 and \
                        (data_shape is None or tuple(s[2:]) == tuple(data_shape[2:])) and \
                        (num_classes is None or s[1] == num_classes):
                    score_blob = t
                    break
            if score_blob is not None:
                break
    for name, what in ((score_blob, "score"), (crf_blob, "CRF")):
        if name is not None and name not in net.blob_shapes:
            raise CaffeError(f"--{what.lower()}-blob '{name}' is not a blob of net "
                             f"'{net.name}'")
    if score_blob is None:
        raise CaffeError(f"cannot tell which blob of net '{net.name}' holds the upsampled "
                         "scores (no DenseCRF or MatWrite layer, no 4-D blob of the data's "
                         "size); name it with --score-blob")
    return score_blob, crf_blob
