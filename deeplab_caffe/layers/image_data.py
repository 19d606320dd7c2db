"""ImageData: images and integer labels from a list file (BVLC's ImageDataLayer).

The list holds ``<path> <label>`` per line, split at the line's last space (so paths may hold
spaces) with the label read by C's atoi, as BVLC master does.  Images are read from
root_folder + path like OpenCV's imread (PIL decoding, BGR; is_color: false gives OpenCV's
grey), resized with OpenCV's INTER_LINEAR when new_height and new_width are set (both or
neither), then transformed by transform_param (Caffe's DataTransformer).  shuffle shuffles the
list at setup and at every wrap; rand_skip skips Rand(rand_skip) entries at setup.  Tops: data
(batch_size, C, h, w) and label (batch_size,); each batch takes its shape from its first image.
"""
import numpy as np

from ..data.data_transformer import DataTransformer, layer_transform_param
from ..data.image_seg_data import c_atoi, read_image_bgr
from ..errors import CaffeError
from .base import register
from .prefetch import PrefetchingDataLayer


def parse_image_list(source):
    """[(path, label, "list:LINE")] of an ImageData list file."""
    try:
        with open(source, "r", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CaffeError(f"image_data_param.source '{source}': cannot read list file "
                         f"({e.strerror})") from None
    entries = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        pos = line.rfind(" ")
        entries.append((line[:pos] if pos >= 0 else line, c_atoi(line[pos + 1:]),
                        f"{source}:{n}"))
    if not entries:
        raise CaffeError(f"image_data_param.source '{source}': the list file has no entries")
    return entries


@register("ImageData")
class ImageDataLayer(PrefetchingDataLayer):
    exact_num_top = 2

    def layer_setup(self, bottom_shapes):
        p = self.param("image_data_param")
        self.new_height = int(p.get("new_height", 0))
        self.new_width = int(p.get("new_width", 0))
        if (self.new_height > 0) != (self.new_width > 0):
            raise self.error("image_data_param: new_height and new_width must be set together, "
                             f"got {self.new_height} and {self.new_width}")
        self.batch_size = int(p.get("batch_size", 1))
        if self.batch_size <= 0:
            raise self.error(f"image_data_param.batch_size must be positive, got "
                             f"{self.batch_size}")
        self.is_color = bool(p.get("is_color", True))
        self.root_folder = p.get("root_folder", "")
        self.shuffle = bool(p.get("shuffle", False))
        rng = self.make_rng()
        try:
            self.lines = parse_image_list(p.get("source", ""))
            self.transformer = DataTransformer(
                layer_transform_param(self.spec, "image_data_param"), self.phase, rng)
        except CaffeError as e:
            raise self.error(str(e)) from None
        self.rng = rng
        if self.shuffle:
            self.rng.shuffle(self.lines)
        self.pos = 0
        rand_skip = int(p.get("rand_skip", 0))
        if rand_skip:
            skip = int(self.rng.integers(0, rand_skip))
            if skip >= len(self.lines):
                raise self.error(f"rand_skip drew {skip}: not enough entries ({len(self.lines)}) "
                                 "to skip")
            self.pos = skip
        try:
            c, h, w = self.transformer.output_shape(self._read(self.lines[self.pos]).shape)
        except CaffeError as e:
            raise self.error(str(e)) from None
        return [(self.batch_size, c, h, w), (self.batch_size,)]

    def _read(self, entry):
        path, _, where = entry
        size = (self.new_height, self.new_width) if self.new_height else None
        img = read_image_bgr(self.root_folder + path, self.is_color, size, where=where)
        return np.ascontiguousarray(img.transpose(2, 0, 1))

    def load_batch(self):
        first = self._read(self.lines[self.pos])
        c, h, w = self.transformer.output_shape(first.shape)
        data = np.empty((self.batch_size, c, h, w), np.float32)
        label = np.empty(self.batch_size, np.float32)
        for i in range(self.batch_size):
            entry = self.lines[self.pos]
            sample = first if i == 0 else self._read(entry)
            if self.transformer.output_shape(sample.shape) != (c, h, w):
                raise CaffeError(f"{entry[2]}: image {entry[0]} gives {sample.shape}, the "
                                 f"batch's first image {(c, h, w)} (images of one batch must "
                                 "have one size)")
            data[i] = self.transformer(sample)
            label[i] = entry[1]
            self.pos += 1
            if self.pos >= len(self.lines):
                self.pos = 0
                if self.shuffle:
                    self.rng.shuffle(self.lines)
        return data, label
