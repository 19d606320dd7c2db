"""Pictures of label maps: the VOC colours, overlays and side-by-side panels (PIL only).

The palette is ``deeplab_caffe.data.voc.voc_palette`` (class 0 black, 255 = void cream).
"""
import numpy as np
import torch
from PIL import Image, ImageDraw

from ..data.voc import voc_palette
from ..errors import CaffeError

_PALETTE = voc_palette(256)


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def colourize(label, palette=None):
    """(H, W) class indices 0..255 -> (H, W, 3) uint8 RGB in the VOC colours."""
    lab = _np(label)
    if lab.ndim != 2:
        raise CaffeError(f"label must be (H, W), got shape {lab.shape}")
    if lab.size and (lab.min() < 0 or lab.max() > 255):
        raise CaffeError(f"label values must be in 0..255 to colour them, got "
                         f"{int(lab.min())}..{int(lab.max())}")
    pal = _PALETTE if palette is None else np.asarray(palette, np.uint8)
    return pal[lab.astype(np.int64)]


colorize = colourize


def as_rgb_uint8(image):
    """An image as (H, W, 3) uint8 RGB from a PIL image, (H, W, 3) or (3, H, W) array."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    a = _np(image)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[2] != 3:
        a = a.transpose(1, 2, 0)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, 2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise CaffeError(f"image must be (H, W, 3) or (3, H, W), got shape {a.shape}")
    return np.clip(np.rint(a), 0, 255).astype(np.uint8) if a.dtype != np.uint8 else a


def overlay(image, label, alpha=0.5, ignore_label=255, background_clear=True):
    """(H, W, 3) uint8: the label colours blended over an RGB image with weight ``alpha``.

    Void pixels, and background (class 0) when ``background_clear``, keep the image."""
    img = as_rgb_uint8(image).astype(np.float32)
    lab = _np(label)
    if lab.shape != img.shape[:2]:
        raise CaffeError(f"label shape {lab.shape} does not match image {img.shape[:2]}")
    col = colourize(lab).astype(np.float32)
    mask = lab != ignore_label
    if background_clear:
        mask &= lab != 0
    out = img.copy()
    out[mask] = (1 - alpha) * img[mask] + alpha * col[mask]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def panel(images, titles=None, gap=4, title_height=14, background=(255, 255, 255)):
    """Side-by-side PIL image of (H, W, 3) uint8 arrays (heights may differ), titled above."""
    arrays = [as_rgb_uint8(a) for a in images]
    if not arrays:
        raise CaffeError("panel needs at least one image")
    th = title_height if titles else 0
    height = max(a.shape[0] for a in arrays) + th
    width = sum(a.shape[1] for a in arrays) + gap * (len(arrays) - 1)
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    x = 0
    for i, a in enumerate(arrays):
        canvas.paste(Image.fromarray(a), (x, th))
        if titles and i < len(titles):
            draw.text((x + 2, 1), str(titles[i]), fill=(0, 0, 0))
        x += a.shape[1] + gap
    return canvas


def save_rgb(path, rgb):
    Image.fromarray(as_rgb_uint8(rgb)).save(path)
