"""A synthetic VOC-style segmentation set, for demos and tests without downloads.

Each image is a textured background (class 0) with a few ellipses, rectangles and polygons of
other classes.  A class has its own colour and texture (flat, stripes, checks or speckle), and
every object gets its own colour jitter plus pixel noise, so a small CNN can learn the classes
from colour and texture but not perfectly.  ``Look`` holds those amplitudes: the default one
is cluttered (the tests' CRF and evaluation cases); DEMO_LOOK, tools/demo.py's, is cleaner, so
that a small net learns the classes in a few hundred iterations, and draws the same random
numbers (only their scale differs).  Pixels are coloured from the label map itself, so
image edges coincide exactly with label edges, which is what lets a dense CRF sharpen a coarse
prediction.  Like VOC, a band of ``void`` (255) pixels runs along every boundary between two
labels.

Layout written under ``root`` (DeepLab's):
  JPEGImages/<id>.jpg (or .png)      RGB images
  SegmentationClassAug/<id>.png      raw-index (mode L) labels: 0..num_classes-1, 255 = void
  list/train_aug.txt, list/val.txt   "/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png"
  list/train_aug_id.txt, list/val_id.txt   bare ids
Ids are ``train_000000`` ... and ``val_000000`` ...; image i of a split depends only on
(seed, split, i), so the same seed always gives the same files.
"""
import colorsys
import os
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np
from PIL import Image, ImageDraw

from ..errors import CaffeError

VOID = 255


@dataclass(frozen=True)
class Look:
    """Amplitudes in grey levels: background level (+-), shading waves (range of each of 3),
    per-object colour jitter (+-, per channel), class texture (range), pixel noise (std)."""
    background: float = 40.0
    shading: tuple = (8.0, 18.0)
    jitter: float = 18.0
    texture: tuple = (14.0, 24.0)
    noise: float = 7.0


DEMO_LOOK = Look(background=25.0, shading=(5.0, 12.0), jitter=10.0, texture=(8.0, 14.0),
                 noise=4.0)


@dataclass
class SyntheticVOC:
    root: str
    num_classes: int
    ids: Dict[str, List[str]] = field(default_factory=dict)     # split -> ids
    lists: Dict[str, str] = field(default_factory=dict)         # list name -> path


def class_colours(num_classes):
    """(num_classes, 3) float RGB: grey for the background, spread hues for the others."""
    colours = np.zeros((num_classes, 3))
    colours[0] = (128, 128, 128)
    for c in range(1, num_classes):
        hue = (c - 1) / max(num_classes - 1, 1)
        sat = 0.85 if c % 2 else 0.6
        val = 0.9 if (c // 2) % 2 else 0.7
        colours[c] = np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255
    return colours


def _class_texture(c, yy, xx, amp_range):
    """Zero-mean texture of class c on the pixel grid (amplitude in grey levels)."""
    rng = np.random.default_rng(7919 * c + 17)
    kind = c % 4
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(4.0, 9.0)
    amp = rng.uniform(*amp_range)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    if kind == 0:
        return np.zeros_like(u)
    if kind == 1:       # stripes
        return amp * np.sign(np.sin(2 * np.pi * u / period))
    if kind == 2:       # checks
        v = -xx * np.sin(angle) + yy * np.cos(angle)
        return amp * np.sign(np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period))
    # speckle: a fixed-frequency interference pattern
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    return amp * np.sin(2 * np.pi * u / (period / 2)) * np.cos(2 * np.pi * v / (period / 2))


def _draw_object(draw, rng, height, width, c):
    cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
    ry, rx = rng.uniform(0.12, 0.35) * height, rng.uniform(0.12, 0.35) * width
    kind = rng.integers(0, 3)
    if kind == 0:
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=int(c))
    elif kind == 1:
        draw.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=int(c))
    else:
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = rng.uniform(0.5, 1.0, n)
        pts = [(float(cx + rx * r * np.cos(a)), float(cy + ry * r * np.sin(a)))
               for a, r in zip(angles, radii)]
        draw.polygon(pts, fill=int(c))


def void_band(label, radius=1):
    """Mask of pixels within ``radius`` of a boundary between two different labels.

    Both pixels of every differing 4-neighbour pair are boundary pixels (a 2-pixel line), then
    the line is dilated by ``radius`` in the chessboard metric."""
    band = np.zeros(label.shape, bool)
    dx = label[:, 1:] != label[:, :-1]
    dy = label[1:, :] != label[:-1, :]
    band[:, 1:] |= dx
    band[:, :-1] |= dx
    band[1:, :] |= dy
    band[:-1, :] |= dy
    for _ in range(radius):
        grown = band.copy()
        grown[1:, :] |= band[:-1, :]
        grown[:-1, :] |= band[1:, :]
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
        band = grown
    return band


def render_sample(rng, height, width, num_classes, colours, max_objects=4, void_radius=1,
                  look=Look()):
    """One sample: (image (H, W, 3) uint8 RGB, label (H, W) uint8 with the void band,
    clean label (H, W) uint8 without it)."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    n_obj = int(rng.integers(1, max_objects + 1))
    classes = rng.integers(1, num_classes, n_obj)
    for c in classes:
        _draw_object(draw, rng, height, width, c)
    clean = np.asarray(canvas, dtype=np.uint8)

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.empty((height, width, 3))
    # Background: per-image grey level and a smooth random shading, like a cluttered scene.
    shade = np.zeros((height, width))
    for _ in range(3):
        fy, fx = rng.uniform(-0.08, 0.08, 2)
        shade += rng.uniform(*look.shading) * np.sin(fy * yy + fx * xx
                                                    + rng.uniform(0, 2 * np.pi))
    img[...] = colours[0] + rng.uniform(-look.background, look.background) + shade[:, :, None]
    for c in np.unique(clean):
        if c == 0:
            continue
        mask = clean == c
        colour = colours[c] + rng.uniform(-look.jitter, look.jitter, 3)    # per image and class
        img[mask] = colour + _class_texture(int(c), yy[mask], xx[mask], look.texture)[:, None]
    img += rng.normal(0.0, look.noise, img.shape)
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    label = clean.copy()
    label[void_band(clean, void_radius)] = VOID
    return image, label, clean


def _size_range(size):
    """size: int, (H, W) or ((h_min, h_max), (w_min, w_max)) -> ((h0, h1), (w0, w1))."""
    if isinstance(size, (int, np.integer)):
        return (int(size), int(size)), (int(size), int(size))
    try:
        h, w = size
        hr = (int(h), int(h)) if np.isscalar(h) else (int(h[0]), int(h[1]))
        wr = (int(w), int(w)) if np.isscalar(w) else (int(w[0]), int(w[1]))
    except (TypeError, ValueError, IndexError):
        raise CaffeError(f"size must be an int, (H, W) or ((h_min, h_max), (w_min, w_max)); "
                         f"got {size!r}") from None
    if min(hr + wr) < 8 or hr[0] > hr[1] or wr[0] > wr[1]:
        raise CaffeError(f"size {size!r}: sizes must be >= 8 with min <= max")
    return hr, wr


def make_synthetic_voc(root, num_train=100, num_val=20, size=((96, 128), (96, 128)),
                       num_classes=21, seed=0, image_format="jpg", max_objects=4,
                       void_radius=1, jpeg_quality=95, look=Look()):
    """Write a synthetic VOC-style set under ``root`` (see the module docstring for the layout).

    size: int, (H, W), or ((h_min, h_max), (w_min, w_max)) drawn per image, both inclusive.
    num_classes counts the background (class 0); look: the amplitudes (Look).  Returns a
    SyntheticVOC with the ids and the list paths (keys "train_aug", "val", "train_aug_id",
    "val_id").
    """
    if not 2 <= num_classes <= 255:
        raise CaffeError(f"num_classes must be in [2, 255], got {num_classes}")
    if image_format not in ("jpg", "png"):
        raise CaffeError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    (h0, h1), (w0, w1) = _size_range(size)
    root = os.fspath(root)
    for d in ("JPEGImages", "SegmentationClassAug", "list"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    colours = class_colours(num_classes)
    out = SyntheticVOC(root=root, num_classes=num_classes)
    for split_code, (split, list_name, count) in enumerate(
            (("train", "train_aug", num_train), ("val", "val", num_val))):
        ids, lines = [], []
        for i in range(count):
            rng = np.random.default_rng([seed, split_code, i])
            height, width = int(rng.integers(h0, h1 + 1)), int(rng.integers(w0, w1 + 1))
            image, label, _ = render_sample(rng, height, width, num_classes, colours,
                                            max_objects, void_radius, look)
            image_id = f"{split}_{i:06d}"
            img_rel = f"/JPEGImages/{image_id}.{image_format}"
            lab_rel = f"/SegmentationClassAug/{image_id}.png"
            pil = Image.fromarray(image)
            if image_format == "jpg":
                pil.save(root + img_rel, quality=jpeg_quality)
            else:
                pil.save(root + img_rel, compress_level=1)
            Image.fromarray(label).save(root + lab_rel, compress_level=1)
            ids.append(image_id)
            lines.append(f"{img_rel} {lab_rel}")
        out.ids[split] = ids
        for name, rows in ((list_name, lines), (list_name + "_id", ids)):
            path = os.path.join(root, "list", name + ".txt")
            with open(path, "w") as f:
                f.write("".join(r + "\n" for r in rows))
            out.lists[name] = path
    return out


def synthetic_photo(w, h, seed, num_shapes=7, min_size=10, max_frac=2, blur=1.2,
                    noise_dtype=np.float64):
    """An (h, w, 3) uint8 photograph-like scene for CRF tests and benchmarks: a shaded
    background, ``num_shapes`` flat-coloured ellipses/rectangles (sides from ``min_size`` to
    w/``max_frac``, h/``max_frac``), a Gaussian blur of radius ``blur`` and sensor noise (sd 3)."""
    from PIL import ImageFilter
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([90 + 80 * xx / w, 120 + 60 * yy / h, 160 - 50 * xx / w], -1)
    im = Image.fromarray(bg.astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(num_shapes):
        x0, y0 = rng.integers(0, w - min_size), rng.integers(0, h - min_size)
        box = [int(x0), int(y0), int(x0 + rng.integers(min_size, w // max_frac)),
               int(y0 + rng.integers(min_size, h // max_frac))]
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=col)
    im = im.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(im).astype(noise_dtype) + rng.normal(0, 3, (h, w, 3)).astype(noise_dtype)
    return np.ascontiguousarray(np.clip(arr, 0, 255).astype(np.uint8))
