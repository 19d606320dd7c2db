"""Input, MemoryData and DummyData: data layers without files.

Device: every data layer registers an empty non-persistent buffer, so ``layer.to(device)``
moves it and ``layer.device`` says where tops are produced.  Tops are float32.
"""
import numpy as np
import torch

from ..errors import CaffeError
from ..fillers import fill, filler_field
from .base import Layer, register


class DataLayer(Layer):
    """Layers without bottoms: ``setup([])`` gives the top shapes, ``forward()`` the tops."""
    exact_num_bottom = 0

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)

    @property
    def device(self):
        return self._device_anchor.device

    def _set_top_buffer(self, i, tensor):
        name = f"_top_{i}"
        if name in self._buffers:
            setattr(self, name, tensor)
        else:
            self.register_buffer(name, tensor, persistent=False)

    def _top_buffer(self, i):
        return self._buffers[f"_top_{i}"]


def blob_shape(msg):
    """A BlobShape Message -> tuple of dims."""
    return tuple(int(d) for d in msg.getlist("dim"))


@register("Input")
class InputLayer(DataLayer):
    """Tops whose values the caller supplies (``net.forward(data=...)``).

    input_param.shape: one BlobShape per top, or one for all tops, or none (tops unshaped,
    reported as ()).  ``forward(*arrays)`` stores the given arrays (any shape, like a Caffe blob
    the user reshapes) and returns them; ``forward()`` returns what was stored last, zeros at
    first.
    """
    min_num_top = 1

    def setup(self, bottom_shapes):
        self.check_counts(len(bottom_shapes), len(self.spec.top))
        shapes = [blob_shape(s) for s in self.param("input_param").getlist("shape")]
        num_top = len(self.spec.top)
        if len(shapes) not in (0, 1, num_top):
            raise self.error(f"input_param has {len(shapes)} shapes for {num_top} tops; give "
                             "one shape, or one per top")
        for s in shapes:
            if any(d < 0 for d in s):
                raise self.error(f"input_param shape {s} has a negative dimension")
        if not shapes:
            shapes = [()] * num_top
        elif len(shapes) == 1:
            shapes = shapes * num_top
        for i, s in enumerate(shapes):
            self._set_top_buffer(i, torch.zeros(s, dtype=torch.float32, device=self.device))
        return [tuple(s) for s in shapes]

    def forward(self, *arrays):
        num_top = len(self.spec.top)
        if arrays:
            if len(arrays) != num_top:
                raise self.error(f"Input takes {num_top} arrays ({', '.join(self.spec.top)}), "
                                 f"got {len(arrays)}")
            for i, a in enumerate(arrays):
                self._set_top_buffer(i, torch.as_tensor(a).to(self.device, torch.float32))
        return tuple(self._top_buffer(i) for i in range(num_top))


@register("MemoryData")
class MemoryDataLayer(DataLayer):
    """Batches from arrays held in memory, like Caffe's MemoryDataLayer and pycaffe's
    ``net.set_input_arrays``.

    Tops: data (batch_size, channels, height, width) and label (batch_size,), float32.
    ``set_input_arrays(data (n, C, H, W), labels (n,) or (n, 1, 1, 1))`` with n a multiple of
    batch_size stores them as they are: like Caffe's Reset, no transform_param is applied.
    ``add_mat_vector(images, labels)`` (images: HxWxC uint8 BGR) applies transform_param's
    crop_size, mirror, mean_value and scale, like Caffe's AddMatVector.
    Each forward yields the next batch, cyclically.
    """
    exact_num_top = 2

    def setup(self, bottom_shapes):
        self.check_counts(len(bottom_shapes), len(self.spec.top))
        p = self.param("memory_data_param")
        self.batch_size = int(p.get("batch_size", 0))
        self.channels = int(p.get("channels", 0))
        self.height = int(p.get("height", 0))
        self.width = int(p.get("width", 0))
        if min(self.batch_size, self.channels, self.height, self.width) <= 0:
            raise self.error("memory_data_param batch_size, channels, height and width must be "
                             f"specified and positive, got {self.batch_size}, {self.channels}, "
                             f"{self.height}, {self.width}")
        self._data = None
        self._labels = None
        self._pos = 0
        self._rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, ()).item()))
        return [(self.batch_size, self.channels, self.height, self.width), (self.batch_size,)]

    def set_batch_size(self, batch_size):
        if self._data is not None and self._data.shape[0] % batch_size:
            raise self.error(f"batch_size {batch_size} does not divide the {self._data.shape[0]}"
                             " samples set")
        self.batch_size = int(batch_size)
        self._pos = 0

    def set_input_arrays(self, data, labels):
        data = torch.as_tensor(np.asarray(data) if not torch.is_tensor(data) else data)
        labels = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels)
        if data.dim() != 4:
            raise self.error(f"set_input_arrays: data must be 4-D (n, C, H, W), got shape "
                             f"{tuple(data.shape)}")
        if labels.dim() == 4 and tuple(labels.shape[1:]) == (1, 1, 1):
            labels = labels.reshape(-1)
        if labels.dim() != 1:
            raise self.error(f"set_input_arrays: labels must have shape (n,) or (n, 1, 1, 1), got"
                             f" {tuple(labels.shape)}")
        n = data.shape[0]
        if labels.shape[0] != n:
            raise self.error(f"set_input_arrays: {n} data samples but {labels.shape[0]} labels")
        if tuple(data.shape[1:]) != (self.channels, self.height, self.width):
            raise self.error(f"set_input_arrays: data samples are {tuple(data.shape[1:])}, the "
                             f"layer expects {(self.channels, self.height, self.width)}")
        if n == 0 or n % self.batch_size:
            raise self.error(f"set_input_arrays: the number of samples ({n}) must be a positive "
                             f"multiple of batch_size ({self.batch_size})")
        self._data = data.to(torch.float32).contiguous()
        self._labels = labels.to(torch.float32).contiguous()
        self._pos = 0

    def add_mat_vector(self, images, labels):
        from ..data.image_seg_data import SegTransform
        t = self.param("transform_param")
        transform = SegTransform(crop_size=int(t.get("crop_size", 0)),
                                 mean_value=tuple(float(v) for v in t.getlist("mean_value")),
                                 scale=float(t.get("scale", 1.0)), mirror=bool(t.get("mirror", 0)),
                                 phase=self.phase)
        out = []
        for k, img in enumerate(images):
            img = np.asarray(img, dtype=np.uint8)
            if img.ndim == 2:
                img = img[:, :, None]
            crop = transform.crop_size
            if crop and (img.shape[0] < crop or img.shape[1] < crop):
                raise self.error(f"add_mat_vector: image {k} is {img.shape[1]}x{img.shape[0]}, "
                                 f"smaller than crop_size {crop}")
            data, _, _ = transform(img, np.zeros(img.shape[:2], np.uint8), self._rng)
            out.append(data)
        self.set_input_arrays(np.stack(out), np.asarray(labels, dtype=np.float32))

    def forward(self):
        if self._data is None:
            raise self.error("MemoryData has no data: call set_input_arrays first")
        n, b = self._data.shape[0], self.batch_size
        data = self._data[self._pos:self._pos + b].to(self.device, non_blocking=True)
        labels = self._labels[self._pos:self._pos + b].to(self.device, non_blocking=True)
        self._pos = (self._pos + b) % n
        return data, labels


@register("DummyData")
class DummyDataLayer(DataLayer):
    """Tops filled by fillers (dummy_data_param).

    Shapes: ``shape`` (one BlobShape, or one per top), or the legacy num/channels/height/width
    lists (each of length 1 or one per top).  data_filler: none (constant 0), one for all tops,
    or one per top.  As in Caffe, a constant filler fills its tops once, any other filler
    refills them at every forward (``layer.generator``, a torch.Generator, seeds those; None
    uses torch's default one).
    """
    min_num_top = 1

    def setup(self, bottom_shapes):
        self.check_counts(len(bottom_shapes), len(self.spec.top))
        p = self.param("dummy_data_param")
        num_top = len(self.spec.top)
        fillers = p.getlist("data_filler")
        if len(fillers) not in (0, 1, num_top):
            raise self.error(f"dummy_data_param has {len(fillers)} data_fillers for {num_top} "
                             "tops; give none, one, or one per top")
        self.fillers = fillers if fillers else [None]
        self.refill = [filler_field(f, "type") != "constant" for f in self.fillers]
        self.generator = getattr(self, "generator", None)
        self.shapes = self._shapes(p, num_top)
        for i, shape in enumerate(self.shapes):
            t = torch.zeros(shape, dtype=torch.float32, device=self.device)
            k = self._filler_index(i)
            try:
                if not self.refill[k]:
                    fill(t, self.fillers[k])
                else:
                    # Check the filler's parameters now rather than at the first forward.
                    fill(torch.empty(shape), self.fillers[k], generator=torch.Generator())
            except CaffeError as e:
                raise self.error(f"data_filler for top '{self.spec.top[i]}': {e}") from None
            self._set_top_buffer(i, t)
        return list(self.shapes)

    def _shapes(self, p, num_top):
        legacy = {k: [int(v) for v in p.getlist(k)] for k in ("num", "channels", "height", "width")}
        shapes = [blob_shape(s) for s in p.getlist("shape")]
        if any(legacy.values()):
            if shapes:
                raise self.error("dummy_data_param: both shape and legacy num/channels/height/"
                                 "width were given")
            for k, v in legacy.items():
                if len(v) not in (1, num_top):
                    raise self.error(f"dummy_data_param.{k} must have 1 or {num_top} values, "
                                     f"got {len(v)}")
            return [tuple(legacy[k][0] if len(legacy[k]) == 1 else legacy[k][i]
                          for k in ("num", "channels", "height", "width")) for i in range(num_top)]
        if len(shapes) not in (1, num_top):
            raise self.error(f"dummy_data_param needs 1 or {num_top} shapes, got {len(shapes)}")
        return [shapes[0] if len(shapes) == 1 else shapes[i] for i in range(num_top)]

    def _filler_index(self, i):
        return i if len(self.fillers) > 1 else 0

    def forward(self):
        tops = []
        for i in range(len(self.spec.top)):
            k = self._filler_index(i)
            if self.refill[k]:
                t = torch.empty(self.shapes[i], dtype=torch.float32, device=self.device)
                tops.append(fill(t, self.fillers[k], generator=self.generator))
            else:
                # A copy, so that an in-place consumer cannot change the constant for later.
                tops.append(self._top_buffer(i).clone())
        return tuple(tops)
