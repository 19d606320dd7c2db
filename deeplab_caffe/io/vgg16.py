"""DeepLab v1 initial weights from BVLC's ImageNet VGG-16 (Chen et al., ICLR 2015, section 3.2
and Table 2; docs/caffe_formats.md, "VGG-16 initial weights").

VGG-16's fc6 is a 7x7x512 -> 4096 filter.  DeepLab turns fc6/fc7 into convolutions and shrinks
fc6 "by simple decimation" to 4x4 or 3x3 taps (and, for LargeFOV, 4096 -> 1024 filters in fc6
and fc7).  The paper gives no index pattern; the choice here, ``taps="rf"``, keeps taps spread
over the whole 7x7 support so that, with the variant's hole, the receptive field of Table 2 is
kept:

    kernel 3: taps {0, 3, 6}     with hole 12 (= 3 x the input stride 4): RF 224 (LargeFOV)
    kernel 4: taps {0, 2, 4, 6}  with hole 8 (DeepLab-4x4, RF 224) or hole 4 (DeepLab, RF 128)
    kernel 7: all taps           with hole 4 (DeepLab-7x7, RF 224)

Channels: every (4096 / channels)-th filter starting at ``channel_offset`` (0, 4, 8, ... for
1024); fc7 keeps the same subset for its outputs and, consistently, for its inputs (fc6's kept
filters).  Unverified against the released init models (vgg16_20M, vgg16_128), whose making is
undocumented.  No rescaling is applied; fine-tuning adapts.
"""
import numpy as np

from ..errors import CaffeError

VARIANTS = {   # name: (kernel, channels, hole)
    "largefov": (3, 1024, 12), "deeplab": (4, 4096, 4), "4x4": (4, 4096, 8),
    "7x7": (7, 4096, 4), "msc": (4, 4096, 4), "msc-largefov": (3, 1024, 12)}
RF_TAPS = {1: (3,), 2: (0, 6), 3: (0, 3, 6), 4: (0, 2, 4, 6), 7: tuple(range(7))}
VGG16_CONV = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
              "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3")


def variant_from_path(path):
    """The variant of a prototxt path such as prototxt/DeepLab-LargeFOV/train.prototxt."""
    import os
    folder = os.path.basename(os.path.dirname(os.path.abspath(path))).lower()
    names = {"deeplab": "deeplab", "deeplab-largefov": "largefov", "deeplab-4x4": "4x4",
             "deeplab-7x7": "7x7", "deeplab-msc": "msc", "deeplab-msc-largefov": "msc-largefov",
             "deeplab-coco-largefov": "largefov", "deeplab-msc-coco-largefov": "msc-largefov"}
    if folder not in names:
        raise CaffeError(f"cannot tell the DeepLab variant of {path}: its folder should be one of "
                         + ", ".join(sorted(names)) + f" (or pass one of {', '.join(VARIANTS)})")
    return names[folder]


def tap_indices(kernel, taps="rf"):
    if isinstance(taps, str):
        if taps != "rf":
            raise CaffeError(f"taps must be 'rf' or a list of {kernel} indices in 0..6, got "
                             f"{taps!r}")
        if kernel not in RF_TAPS:
            raise CaffeError(f"no 'rf' tap pattern for kernel {kernel} (have "
                             f"{sorted(RF_TAPS)}); give the indices")
        return RF_TAPS[kernel]
    taps = tuple(int(t) for t in taps)
    if len(taps) != kernel or any(not 0 <= t < 7 for t in taps) or len(set(taps)) != kernel:
        raise CaffeError(f"taps must be {kernel} distinct indices in 0..6, got {taps}")
    return taps


def decimate_vgg16_fc(fc6_w, fc6_b, fc7_w, fc7_b, kernel=3, channels=1024, taps="rf",
                      channel_offset=0):
    """Decimated DeepLab fc6/fc7 from VGG-16's fully connected fc6/fc7.

    fc6_w: (N, C*49) or (N, C, 7, 7) (any shape with that element count; VGG-16: N=4096,
    C=512), fc6_b: (N,), fc7_w: (N, N) or (N, N, 1, 1), fc7_b: (N,).
    Returns (fc6_w (channels, C, kernel, kernel), fc6_b (channels,),
             fc7_w (channels, channels, 1, 1), fc7_b (channels,)), float32."""
    fc6_b = np.asarray(fc6_b, np.float32).reshape(-1)
    n = fc6_b.size
    fc6_w = np.asarray(fc6_w, np.float32)
    if n == 0 or fc6_w.size % (n * 49):
        raise CaffeError(f"fc6 weights of shape {fc6_w.shape} are not ({n}, C*7*7)")
    fc6_w = fc6_w.reshape(n, -1, 7, 7)
    fc7_w = np.asarray(fc7_w, np.float32)
    if fc7_w.size != n * n:
        raise CaffeError(f"fc7 weights of shape {fc7_w.shape} are not ({n}, {n})")
    fc7_w = fc7_w.reshape(n, n)
    fc7_b = np.asarray(fc7_b, np.float32).reshape(-1)
    if fc7_b.size != n:
        raise CaffeError(f"fc7 bias has {fc7_b.size} values, expected {n}")
    if channels <= 0 or n % channels:
        raise CaffeError(f"channels={channels} must divide fc6's {n} filters")
    step = n // channels
    if not 0 <= channel_offset < step:
        raise CaffeError(f"channel_offset must be in 0..{step - 1}, got {channel_offset}")
    keep = np.arange(channel_offset, n, step)
    t = np.asarray(tap_indices(kernel, taps))
    w6 = np.ascontiguousarray(fc6_w[keep][:, :, t][:, :, :, t])
    w7 = np.ascontiguousarray(fc7_w[np.ix_(keep, keep)]).reshape(channels, channels, 1, 1)
    return w6, fc6_b[keep].copy(), w7, fc7_b[keep].copy()


def deeplab_init_layers(vgg, variant="largefov", taps="rf", channel_offset=0):
    """CaffeLayers of a DeepLab init model from a VGG-16 CaffeModel (any dialect): conv1_1 ..
    conv5_3 copied, fc6/fc7 decimated into Convolution blobs, fc8 left out (its filler
    initialises it, as the released prototxts' fc8 names are new)."""
    from .caffemodel import CaffeLayer
    if variant not in VARIANTS:
        raise CaffeError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    kernel, channels, _ = VARIANTS[variant]
    by_name = {l.name: l for l in vgg.layers}
    missing = [n for n in VGG16_CONV + ("fc6", "fc7") if n not in by_name or
               len(by_name[n].blobs) != 2]
    if missing:
        raise CaffeError(f"not a VGG-16 model: no weights+bias for {', '.join(missing)}")
    layers = [CaffeLayer(n, "Convolution", [b.copy() for b in by_name[n].blobs])
              for n in VGG16_CONV]
    w6, b6, w7, b7 = decimate_vgg16_fc(*by_name["fc6"].blobs, *by_name["fc7"].blobs,
                                       kernel=kernel, channels=channels, taps=taps,
                                       channel_offset=channel_offset)
    layers.append(CaffeLayer("fc6", "Convolution", [w6, b6]))
    layers.append(CaffeLayer("fc7", "Convolution", [w7, b7]))
    return layers
