"""ImageSegData (DeepLab v1's IMAGE_SEG_DATA): images and label maps from a list file.

Tops: 3 (a layer listing fewer gets anonymous ones, Caffe's AutoTopBlobs): data (N, C, h, w)
BGR minus mean, times scale (its SegTransform travels with it: ``top_transforms``); label
(N, 1, h, w) class indices (ignore_label where padded); data_dim (N, 1, 1, 2) holding
(min(h, img_h), min(w, img_w)) per image, which the DenseCRF layer uses.  h = w = crop_size
when cropping, else the size of the images (all equal).  The decoding lives in
``deeplab_caffe.data.image_seg_data``, the transform in ``deeplab_caffe.data.transform``.

Randomness (shuffle, rand_skip, crop offsets, mirror) comes from ``layer.seed``; when it is not
set before setup, a seed is drawn from torch's default generator, so ``torch.manual_seed``
(the solver's random_seed) makes runs repeatable.  ``layer.num_workers`` (default 0) and
``layer.pin_memory`` choose in-process decoding or a prefetching DataLoader; set them before
the first forward.
"""
import torch

from ..data.image_seg_data import CaffeOrder, ImageSegDataset, batch_stream
from ..errors import CaffeError
from .base import register
from .base_data import DataLayer


@register("ImageSegData")
class ImageSegDataLayer(DataLayer):
    exact_num_top = 3
    auto_top_blobs = True

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.seed = None
        self.num_workers = 0
        self.pin_memory = False
        self._stream = None

    def layer_setup(self, bottom_shapes):
        p = self.param("image_data_param")
        try:
            self.dataset = ImageSegDataset.from_params(p, self.param("transform_param"),
                                                       self.phase)
        except CaffeError as e:
            raise self.error(str(e)) from None
        self.batch_size = int(p.get("batch_size", 1))
        if self.batch_size <= 0:
            raise self.error(f"image_data_param.batch_size must be positive, got "
                             f"{self.batch_size}")
        if self.seed is None:
            self.seed = int(torch.randint(0, 2 ** 62, (), device="cpu").item())
        self.order = CaffeOrder(len(self.dataset), self.batch_size,
                                shuffle=bool(p.get("shuffle", False)),
                                rand_skip=int(p.get("rand_skip", 0)), seed=self.seed)
        try:
            c, h, w = self.dataset.first_shape(int(self.order.order[self.order.pos]))
        except CaffeError as e:
            raise self.error(str(e)) from None
        n = self.batch_size
        shapes = [(n, c, h, w), (n, 1, h, w), (n, 1, 1, 2)]
        return shapes

    def top_transforms(self):
        return [self.dataset.transform, None, None]

    def close(self):
        """Stop worker processes, if any."""
        self._stream = None

    def forward(self):
        if self._stream is None:
            self._stream = batch_stream(self.dataset, self.order, self.num_workers,
                                        self.pin_memory and self.device.type == "cuda")
        try:
            batch = next(self._stream)
        except CaffeError as e:
            self._stream = None     # a generator that raised is finished
            raise self.error(str(e)) from None
        return tuple(t.to(self.device, non_blocking=True) for t in batch)
