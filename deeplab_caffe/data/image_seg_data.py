"""DeepLab v1's IMAGE_SEG_DATA input pipeline as plain, picklable Python.

Everything a background loader needs lives here, away from the layer: the list file, decoding
(PIL, then RGB -> BGR like OpenCV's imread), the joint image/label transform of DeepLab's
``TransformImgAndSeg`` (pad bottom/right, crop, mirror, mean, scale), Caffe's sample order
(shuffle, rand_skip, reshuffle each epoch), a collate, and a batch stream that runs in-process or
on a torch DataLoader with worker processes.

Randomness is carried by the keys: the order yields ``(index, seed)`` pairs and a sample's crop
and mirror come only from its seed, so results do not depend on how many workers run.
"""
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..errors import CaffeError
from .opencv import ask_decoder_for_grey, grey_from_decoder, resize_linear
from .transform import SegTransform
from .voc import check_label_image

LABEL_TYPES = ("NONE", "IMAGE", "PIXEL")


@dataclass(frozen=True)
class ListEntry:
    image: str              # path as written in the list (root_folder not yet prepended)
    label: str              # second token ("" when absent or label_type NONE)
    where: str              # "list.txt:LINE" for error messages


def parse_list(source, label_type="IMAGE"):
    """Read a DeepLab list file: ``<image> [<label>]`` per line (blank lines skipped).

    The second token is read unless label_type is NONE, as DeepLab's layer does."""
    if label_type not in LABEL_TYPES:
        raise CaffeError(f"label_type '{label_type}' is not one of {', '.join(LABEL_TYPES)}")
    try:
        with open(source, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise CaffeError(f"image_data_param.source '{source}': cannot read list file ({e})") \
            from None
    entries = []
    for line_no, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{source}:{line_no}"
        label = tokens[1] if (label_type != "NONE" and len(tokens) > 1) else ""
        if label_type == "PIXEL" and not label:
            raise CaffeError(f"{where}: label_type PIXEL needs '<image> <label>' per line, "
                             f"got {line.strip()!r}")
        entries.append(ListEntry(tokens[0], label, where))
    if not entries:
        raise CaffeError(f"image_data_param.source '{source}': list file has no entries")
    return entries


def c_atoi(text):
    """C's atoi: leading whitespace, optional sign, digits; 0 when there are none."""
    s = text.lstrip()
    sign, i = 1, 0
    if s[:1] in ("+", "-"):
        sign, i = (-1 if s[0] == "-" else 1), 1
    j = i
    while j < len(s) and s[j].isdigit():
        j += 1
    return sign * int(s[i:j]) if j > i else 0


def _open_image(path, where, what, grey=False):
    try:
        img = Image.open(path)
        if grey:
            ask_decoder_for_grey(img)
        img.load()
        return img
    except FileNotFoundError:
        raise CaffeError(f"{where}: {what} file not found: {path}") from None
    except OSError as e:
        raise CaffeError(f"{where}: cannot decode {what} {path} ({e})") from None


def read_image_bgr(path, is_color=True, new_size=None, where="?"):
    """(H, W, C) uint8 (possibly a strided view), BGR channel order like OpenCV's imread
    (C = 3, or 1 when not is_color: OpenCV's IMREAD_GRAYSCALE, ``data.opencv``).

    new_size = (new_height, new_width) resizes with OpenCV's INTER_LINEAR, as DeepLab's
    ReadImageToCVMat."""
    img = _open_image(path, where, "image", grey=not is_color)
    if is_color:
        arr = np.asarray(img if img.mode == "RGB" else img.convert("RGB"), dtype=np.uint8)
        # A reversed view, not a copy: the transform copies into its output anyway.
        arr = arr[:, :, ::-1]
    else:
        arr = grey_from_decoder(img)[:, :, None]
    if new_size:
        arr = resize_linear(arr, *new_size)
    return arr


def read_label_png(path, new_size=None, where="?"):
    """(H, W) uint8 raw class indices from a mode L or palette PNG; others are an error.  (The
    C++ reads labels with IMREAD_GRAYSCALE, which gives a palette PNG's luminance, not its
    indices; a documented difference.)"""
    img = _open_image(path, where, "label")
    try:
        check_label_image(img, path, allow_palette=True)
    except CaffeError as e:
        raise CaffeError(f"{where}: {e}") from None
    seg = np.array(img, dtype=np.uint8)
    if new_size:
        # DeepLab resizes the label map like an image (INTER_LINEAR): indices blend at edges.
        seg = resize_linear(seg, *new_size)
    return seg


class ImageSegDataset:
    """IMAGE_SEG_DATA samples, torch Dataset-style.

    ``dataset[key]`` with key an index or ``(index, seed)`` returns numpy float32 arrays
    ``(data (C, h, w), label (1, h, w), data_dim (1, 1, 2), index)``; ``dataset.collate`` stacks
    them into torch tensors (N, C, h, w), (N, 1, h, w), (N, 1, 1, 2).  h = w = crop_size when
    cropping, else the image size (then every image must have the same size).
    """

    def __init__(self, source, root_folder="", label_type="IMAGE", transform=SegTransform(),
                 is_color=True, new_height=0, new_width=0):
        if (new_height > 0) != (new_width > 0):
            raise CaffeError(f"image_data_param: new_height ({new_height}) and new_width "
                             f"({new_width}) must be set together")
        self.source = source
        self.root_folder = root_folder
        self.label_type = label_type
        self.transform = transform
        self.is_color = is_color
        self.new_size = (int(new_height), int(new_width)) if new_height > 0 else None
        self.entries = parse_list(source, label_type)

    @classmethod
    def from_params(cls, image_data_param, transform_param, phase):
        """Build from the layer's ImageDataParameter and TransformationParameter Messages.

        The deprecated image_data_param copies of crop_size, mirror and scale are used when
        transform_param does not set them; a mean_file is rejected as DeepLab's layer does."""
        p, t = image_data_param, transform_param
        if not p.has("source"):
            raise CaffeError("image_data_param.source (the list file) is required")
        if t.has("mean_file") or p.has("mean_file"):
            raise CaffeError("ImageSegData does not support mean_file; use mean_value")
        transform = SegTransform.from_params(t, phase, image_data_param=p)
        return cls(p.get("source"), root_folder=p.get("root_folder", ""),
                   label_type=p.get("label_type", "IMAGE"), transform=transform,
                   is_color=bool(p.get("is_color", True)),
                   new_height=int(p.get("new_height", 0)), new_width=int(p.get("new_width", 0)))

    def __len__(self):
        return len(self.entries)

    def image_path(self, index):
        # Plain concatenation, like Caffe's root_folder + path.
        return self.root_folder + self.entries[index].image

    def label_path(self, index):
        return self.root_folder + self.entries[index].label

    def load(self, index):
        """(img (H, W, C) uint8 BGR, seg (H, W) uint8) before any transform."""
        entry = self.entries[index]
        img = read_image_bgr(self.image_path(index), self.is_color, self.new_size, entry.where)
        if self.label_type == "PIXEL":
            seg = read_label_png(self.label_path(index), self.new_size, entry.where)
            if seg.shape != img.shape[:2]:
                raise CaffeError(f"{entry.where}: label {self.label_path(index)} is "
                                 f"{seg.shape[1]}x{seg.shape[0]} but image "
                                 f"{self.image_path(index)} is {img.shape[1]}x{img.shape[0]}")
        elif self.label_type == "IMAGE":
            # cv::Scalar into an 8-bit map saturates.
            value = min(max(c_atoi(entry.label), 0), 255)
            seg = np.full(img.shape[:2], value, np.uint8)
        else:
            seg = np.full(img.shape[:2], self.transform.ignore_label, np.uint8)
        return img, seg

    def first_shape(self, index=0):
        """(C, h, w) of the data top, read from one image as Caffe's setup does."""
        img = read_image_bgr(self.image_path(index), self.is_color, self.new_size,
                             self.entries[index].where)
        crop = self.transform.crop_size
        return (img.shape[2], crop, crop) if crop else (img.shape[2],) + img.shape[:2]

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        if not 0 <= index < len(self.entries):
            raise IndexError(index)
        img, seg = self.load(index)
        data, label, (rows, cols) = self.transform(img, seg, np.random.default_rng(seed))
        data_dim = np.array([[[rows, cols]]], dtype=np.float32)
        return data, label, data_dim, index

    def collate(self, samples):
        shape = samples[0][0].shape
        for s in samples:
            if s[0].shape != shape:
                raise CaffeError(
                    f"{self.entries[s[3]].where}: image {self.image_path(s[3])} gives data "
                    f"{s[0].shape[1]}x{s[0].shape[2]} but {self.image_path(samples[0][3])} "
                    f"gives {shape[1]}x{shape[2]}; without crop_size all images in a batch "
                    "must have the same size")
        data = torch.from_numpy(np.stack([s[0] for s in samples]))
        label = torch.from_numpy(np.stack([s[1] for s in samples]))
        data_dim = torch.from_numpy(np.stack([s[2] for s in samples]))
        return data, label, data_dim


class CaffeOrder:
    """Caffe's walk through the list: shuffle once at setup (when ``shuffle``), start at a random
    ``rand_skip`` offset, go round cyclically and reshuffle at each wrap.

    Iterating yields batches of ``(index, sample_seed)`` keys forever, so an instance can serve
    as a torch DataLoader ``batch_sampler``."""

    def __init__(self, num_items, batch_size, shuffle=False, rand_skip=0, seed=0):
        if num_items <= 0:
            raise CaffeError("the list file has no entries")
        if batch_size <= 0:
            raise CaffeError(f"image_data_param.batch_size must be positive, got {batch_size}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(num_items)
        if self.shuffle:
            self.rng.shuffle(self.order)
        self.pos = 0
        if rand_skip:
            skip = int(self.rng.integers(0, rand_skip))
            if skip >= num_items:
                raise CaffeError(f"rand_skip draw {skip} is not below the list size {num_items}")
            self.pos = skip

    def next_batch(self):
        keys = []
        for _ in range(self.batch_size):
            keys.append((int(self.order[self.pos]), int(self.rng.integers(0, 2 ** 63 - 1))))
            self.pos += 1
            if self.pos >= len(self.order):
                self.pos = 0
                if self.shuffle:
                    self.rng.shuffle(self.order)
        return keys

    def __iter__(self):
        while True:
            yield self.next_batch()


def batch_stream(dataset, order, num_workers=0, pin_memory=False, prefetch_factor=2):
    """Endless iterator of collated batches ``(data, label, data_dim)`` (CPU tensors).

    num_workers=0 decodes in this process; otherwise a torch DataLoader with that many worker
    processes prefetches ``prefetch_factor`` batches each (pin_memory for fast GPU copies)."""
    if num_workers <= 0:
        def local():
            while True:
                yield dataset.collate([dataset[k] for k in order.next_batch()])
        return local()
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=order, collate_fn=dataset.collate, num_workers=num_workers,
        pin_memory=pin_memory, prefetch_factor=prefetch_factor, persistent_workers=True)
    return iter(loader)
