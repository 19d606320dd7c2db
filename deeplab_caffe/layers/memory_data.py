"""MemoryData: batches from arrays held in memory."""
import numpy as np
import torch

from ..data.transform import SegTransform
from .base import register
from .base_data import DataLayer


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

    def layer_setup(self, bottom_shapes):
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
        self.transform = SegTransform.from_params(self.param("transform_param"), self.phase)
        return [(self.batch_size, self.channels, self.height, self.width), (self.batch_size,)]

    def top_transforms(self):
        # Only add_mat_vector applies the transform, but the data top is documented (and used
        # by the DenseCRF layer) as transformed by transform_param either way.
        return [self.transform, None]

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
        transform = self.transform
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
