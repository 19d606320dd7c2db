"""What the evaluation tools need to know about a DeepLab test net, and the CRF they apply.

A DeepLab test prototxt ends in ``fc8_interp`` (upsampled scores) -> MAT_WRITE, optionally
-> DENSE_CRF -> ``crf_inf`` -> MAT_WRITE; the score blobs are found from that layout.
"""
import re
from dataclasses import asdict, dataclass

import torch

from ..errors import CaffeError
# eval/testing.py imports the bar from here; its new home is log.py.
from ..log import RateProgress as Progress  # noqa: F401

DEEPLAB_MEAN_BGR = (104.008, 116.669, 122.675)
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


@dataclass
class CRFParams:
    """DeepLab's DenseCRF settings (defaults: DeepLab-LargeFOV's published values)."""
    bi_w: float = 4.0
    bi_xy_std: float = 121.0
    bi_rgb_std: float = 5.0
    pos_w: float = 3.0
    pos_xy_std: float = 3.0
    max_iter: int = 10

    def as_dict(self):
        return asdict(self)

    def apply(self, scores, image, data_dim=None):
        """Marginals (N, L, H, W) of scores (N, L, H, W) with image (N, 3, H, W) 0..255."""
        from ..crf import dense_crf
        return dense_crf(scores.float().contiguous(), image, pos_w=self.pos_w,
                         pos_xy_std=self.pos_xy_std, bi_w=self.bi_w, bi_xy_std=self.bi_xy_std,
                         bi_rgb_std=self.bi_rgb_std, max_iter=int(self.max_iter),
                         data_dim=data_dim)


def image_from_data(data, mean_bgr=DEEPLAB_MEAN_BGR, scale=1.0):
    """The 8-bit BGR image back from a data blob (N, 3, H, W) = (BGR - mean) * scale.

    Rounded and clamped to 0..255, as the DenseCRF layer does for its colour features."""
    mean = torch.as_tensor(mean_bgr, dtype=torch.float32, device=data.device).view(1, -1, 1, 1)
    return (data.detach().float() / float(scale) + mean).round_().clamp_(0, 255)
