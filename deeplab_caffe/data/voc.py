"""PASCAL VOC 2012 + SBD ("SegmentationClassAug") layout as DeepLab v1 used it.

DeepLab's list files hold lines such as
``/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png``; the data layer's
``root_folder`` (the VOC2012 folder) is prepended by plain string concatenation.
Label PNGs must hold raw class indices (0..20, 255 = void).
"""
import os

import numpy as np
from PIL import Image

from ..errors import CaffeError
from ..io._files import atomic_write

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")
IGNORE_LABEL = 255
IMAGE_DIR = "JPEGImages"
LABEL_DIR = "SegmentationClassAug"
# Sizes of DeepLab's lists (deeplab_v1_facts.md, section 2).
LIST_SIZES = {"train_aug": 10582, "val": 1449, "trainval_aug": 12031}


def voc_palette(num_colors=256):
    """The VOC colour map: (num_colors, 3) uint8 RGB.

    Class index i's colour takes the bits of i three at a time, spreading bit 0/1/2 of each
    group into the red/green/blue channels from the most significant bit downwards.
    """
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    for index in range(num_colors):
        r = g = b = 0
        code = index
        for shift in range(7, -1, -1):
            r |= ((code >> 0) & 1) << shift
            g |= ((code >> 1) & 1) << shift
            b |= ((code >> 2) & 1) << shift
            code >>= 3
        palette[index] = (r, g, b)
    return palette


def image_path(voc_root, image_id):
    return os.path.join(voc_root, IMAGE_DIR, image_id + ".jpg")


def label_path(voc_root, image_id):
    return os.path.join(voc_root, LABEL_DIR, image_id + ".png")


def list_line(image_id, with_label=True):
    """A DeepLab list-file line for ``image_id`` (paths relative to the root_folder)."""
    line = f"/{IMAGE_DIR}/{image_id}.jpg"
    if with_label:
        line += f" /{LABEL_DIR}/{image_id}.png"
    return line


def check_layout(voc_root):
    """Raise a CaffeError naming what is missing from a VOC2012 + SegmentationClassAug root."""
    missing = [d for d in (IMAGE_DIR, LABEL_DIR) if not os.path.isdir(os.path.join(voc_root, d))]
    if missing:
        raise CaffeError(
            f"{voc_root}: missing {', '.join(missing)}; expected the VOC2012 folder with "
            f"{IMAGE_DIR}/ and the SBD-augmented {LABEL_DIR}/ (raw-index label PNGs)")


def check_label_image(img, path, allow_palette=True):
    """Raise a CaffeError unless ``img`` (a PIL image read from ``path``) holds raw indices.

    Mode "L" is a raw-index PNG.  A palette PNG ("P", e.g. VOC's own SegmentationClass) holds
    indices too and we read them as such (allow_palette=True); Caffe's OpenCV grayscale read
    would have turned it into luminance, so pass allow_palette=False to insist on Caffe-safe files.
    """
    if img.mode == "L" or (allow_palette and img.mode == "P"):
        return
    if img.mode == "P":
        raise CaffeError(
            f"{path}: label PNG has a colour palette; Caffe reads it as grayscale luminance, not "
            "class indices. Convert it to a raw-index (mode L) PNG, as SegmentationClassAug is")
    if img.mode in ("RGB", "RGBA", "LA"):
        raise CaffeError(
            f"{path}: label image is {img.mode} colour, not raw class indices; Caffe would "
            "convert it to grayscale luminance and silently train on wrong labels. Use a "
            "raw-index (mode L or palette P) PNG such as SegmentationClassAug")
    raise CaffeError(f"{path}: label image has mode {img.mode}; expected an 8-bit raw-index PNG "
                     "(mode L or P)")


def load_label(path, allow_palette=True):
    """Read a label PNG as (H, W) uint8 class indices; clear CaffeError when it is not one."""
    try:
        with Image.open(path) as img:
            img.load()
            check_label_image(img, path, allow_palette)
            return np.array(img, dtype=np.uint8)
    except FileNotFoundError:
        raise CaffeError(f"{path}: label file not found") from None
    except OSError as e:
        raise CaffeError(f"{path}: cannot read label image ({e})") from None


def save_label(path, label, palette=True):
    """Write (H, W) uint8 indices as a PNG: palette-coloured ("P") for viewing, or raw mode "L".

    Either way the stored values are the indices themselves."""
    label = np.ascontiguousarray(label, dtype=np.uint8)
    height, width = label.shape
    img = Image.frombytes("P" if palette else "L", (width, height), label.tobytes())
    if palette:
        img.putpalette(voc_palette(256).reshape(-1).tolist())
    with atomic_write(path, fsync=False) as f:   # a full disk leaves no half PNG
        img.save(f, format="PNG")


def scan_label_list(source, root_folder="", num_classes=None, allow_palette=False):
    """Check every label PNG of a DeepLab list file before a long run.

    Returns a list of "list.txt:LINE: problem" strings (empty when all is well): missing or
    unreadable files, non-raw-index PNGs (palette ones too unless allow_palette, since Caffe
    would read their luminance), and values outside [0, num_classes) other than 255."""
    problems = []
    with open(source, "r", encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line_no, line in enumerate(lines, 1):
        tokens = line.split()
        if len(tokens) < 2:
            continue
        where = f"{source}:{line_no}"
        try:
            label = load_label(root_folder + tokens[1], allow_palette)
        except CaffeError as e:
            problems.append(f"{where}: {e}")
            continue
        if num_classes is not None:
            bad = np.unique(label[(label >= num_classes) & (label != IGNORE_LABEL)])
            if bad.size:
                problems.append(f"{where}: {root_folder + tokens[1]} has label values "
                                f"{bad.tolist()} outside 0..{num_classes - 1} and 255")
    return problems
