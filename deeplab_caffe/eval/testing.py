"""DeepLab's test phase over a list: forward each batch, crop to the image, score with and
without the dense CRF.

The net is a DeepLab test prototxt: an ImageSegData layer (batch 1, crop 513/514, TEST phase:
centre crop, mean padding at the bottom/right), the net, ``fc8_interp`` (Interp to the crop
size), optionally DenseCRF.  Ground truth comes from the data layer's label top when its
label_type is PIXEL; otherwise (the released test prototxts say ``label_type: NONE``) from the
second token of each list line, read and cropped by the same transform.  Only the valid region
(data_dim: the image inside the padded crop) is scored.
"""
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch

from ..data.image_seg_data import ImageSegDataset
from ..errors import CaffeError
from .metrics import ConfusionMeter
from ..log import RateProgress
from .netutil import find_score_blobs, layers_of_type
from .trimap import TrimapMeter, void_distance


def load_test_net(model, weights=None, device="cpu", defines=None, feature_dir=None,
                  mat_write=False):
    """(Net, score blob named by the prototxt or None) for a DeepLab test prototxt.

    Unless ``mat_write``, MatWrite layers are left out: DeepLab's test phase wrote every
    upsampled score blob to disk (about 22 MB per VOC image at 513 x 513 x 21); the tools
    score in memory and save cropped maps only on request.  The first MatWrite (or DenseCRF)
    bottom is still returned as the score blob.  ``${FEATURE_DIR}`` defaults to feature_dir."""
    from ..net import Net
    from ..proto import parse_net
    from .netutil import placeholders
    defines = dict(defines or {})
    if feature_dir is not None and "FEATURE_DIR" in placeholders(model):
        defines.setdefault("FEATURE_DIR", feature_dir)
    spec = parse_net(model, defines=defines)
    score = None
    for ls in spec.layers:
        if ls.type in ("DenseCRF", "MatWrite") and ls.bottom:
            score = ls.bottom[0]
            break
    if not mat_write:
        spec.layers = [ls for ls in spec.layers if ls.type != "MatWrite"]
    return Net(spec, weights=weights, phase="TEST", device=device), score


class _RecordingOrder:
    """Wraps the data layer's sample order to remember which list entries each batch holds."""

    def __init__(self, order):
        self.inner = order
        self.last = []

    def next_batch(self):
        keys = self.inner.next_batch()
        self.last = [k[0] for k in keys]
        return keys

    def __iter__(self):
        while True:
            yield self.next_batch()

    def __getattr__(self, name):
        return getattr(self.inner, name)


class TestData:
    """The ImageSegData layer of a test net and its ground truth, image by image."""

    def __init__(self, net):
        found = layers_of_type(net, "ImageSegData")
        if not found:
            raise CaffeError(f"net '{net.name}' has no ImageSegData layer; test_net runs a "
                             "DeepLab test prototxt (use tools/segment.py for deploy nets)")
        idx, self.name, self.layer = found[0]
        tops = net._tops[idx]
        self.data_top = tops[0]
        self.label_top = tops[1] if len(tops) > 1 else None
        self.dim_top = tops[2] if len(tops) > 2 else None
        self.dataset = ds = self.layer.dataset
        if ds.transform.mirror:
            raise CaffeError(f"layer '{self.name}': transform_param mirror is true; a test net "
                             "must not mirror (the ground truth could not follow the coin)")
        self.layer.num_workers = 0          # the entries of each batch must be known exactly
        if not isinstance(self.layer.order, _RecordingOrder):
            self.layer.order = _RecordingOrder(self.layer.order)
            self.layer._stream = None       # a running stream would bypass the recorder
        self.label_from_blob = ds.label_type == "PIXEL" and self.label_top is not None
        self._gt = None
        if not self.label_from_blob:
            nh, nw = ds.new_size or (0, 0)
            try:
                self._gt = ImageSegDataset(ds.source, ds.root_folder, "PIXEL", ds.transform,
                                           ds.is_color, nh, nw)
            except CaffeError as e:
                raise CaffeError(f"layer '{self.name}': test_net needs ground-truth labels: "
                                 f"the data layer's label_type is {ds.label_type}, so they "
                                 f"are read from the list's second column, but: {e}") from None
        self.transform = net.blob_transforms[self.data_top]
        self.batch_size = self.layer.batch_size

    def __len__(self):
        return len(self.dataset)

    def image_id(self, index):
        return os.path.splitext(os.path.basename(self.dataset.entries[index].image))[0]

    def ground_truth(self, net, n, index):
        """(label (h, w) int64 numpy, (h, w) valid size) of batch item n (list entry index)."""
        if self.label_from_blob:
            label = net.blobs[self.label_top][n, 0]
            if self.dim_top is not None:
                dd = net.blobs[self.dim_top][n].reshape(-1)
                h, w = int(dd[0]), int(dd[1])
            else:
                h, w = self._valid_size(index)
            return label[:h, :w].to(torch.int64).cpu().numpy(), (h, w)
        _, label, data_dim, _ = self._gt[index]
        h, w = int(data_dim.reshape(-1)[0]), int(data_dim.reshape(-1)[1])
        return label[0, :h, :w].astype(np.int64), (h, w)

    def _valid_size(self, index):
        _, _, data_dim, _ = self._gt_any()[index]
        return int(data_dim.reshape(-1)[0]), int(data_dim.reshape(-1)[1])

    def _gt_any(self):
        if self._gt is None:
            ds = self.dataset
            nh, nw = ds.new_size or (0, 0)
            self._gt = ImageSegDataset(ds.source, ds.root_folder, ds.label_type, ds.transform,
                                       ds.is_color, nh, nw)
        return self._gt


@dataclass
class TestResult:
    names: List[str]                                 # "net", and "crf" when the CRF ran
    meters: Dict[str, ConfusionMeter]
    trimap: Dict[str, TrimapMeter] = field(default_factory=dict)
    images: int = 0
    seconds: float = 0.0
    score_blob: str = ""
    crf_blob: Optional[str] = None
    crf_source: Optional[str] = None                 # "net" (DenseCRF layer) or "dense_crf"


def run_test(net, num_classes, iterations=None, crf=None, trimap_widths=None,
             score_blob=None, crf_blob=None, on_image=None, progress=True, ignore_label=255):
    """Run a DeepLab test net over its list and score it.

    crf: None, or crf.CRFParams to apply ``dense_crf`` to the scores when the net has no
    DenseCRF layer (a DenseCRF layer in the net is always scored, as "crf").
    iterations: forward passes (default: the list length / batch size, like run_pascal.sh).
    on_image(image_id, outputs): called per image with {"net": scores (C, h, w) tensor,
    "crf": marginals or absent, "label": (h, w) numpy ground truth, "index": list entry,
    "image": (h, w, 3) uint8 BGR, the 8-bit image the net saw}.
    Returns a TestResult."""
    data = TestData(net)
    score_blob, crf_blob = find_score_blobs(net, data.data_top, num_classes, score_blob,
                                            crf_blob)
    c = net.blob_shapes[score_blob][1]
    if c != num_classes:
        raise CaffeError(f"score blob '{score_blob}' has {c} channels but --num-classes is "
                         f"{num_classes}")
    names = ["net"]
    crf_source = None
    if crf_blob is not None:
        names.append("crf")
        crf_source = "net"
    elif crf is not None:
        names.append("crf")
        crf_source = "dense_crf"
    meters = {n: ConfusionMeter(num_classes, ignore_label) for n in names}
    trimap = {n: TrimapMeter(num_classes, trimap_widths, ignore_label) for n in names} \
        if trimap_widths else {}
    if iterations is None:
        iterations = -(-len(data) // data.batch_size)
    total = iterations * data.batch_size
    bar = RateProgress(total, "test", enabled=progress)
    start = time.perf_counter()
    count = 0
    with torch.no_grad():
        for _ in range(iterations):
            net.forward()
            indices = list(data.layer.order.last)
            if len(indices) != net.blobs[score_blob].shape[0]:
                raise CaffeError(f"layer '{data.name}': could not tell which list entries the "
                                 "batch holds")
            scores = net.blobs[score_blob]
            marg = net.blobs[crf_blob] if crf_blob is not None else None
            gts = [data.ground_truth(net, n, i) for n, i in enumerate(indices)]
            image = None
            if crf_source == "dense_crf":
                dims = torch.tensor([g[1] for g in gts], dtype=torch.float32)
                image = data.transform.image_from_data(net.blobs[data.data_top])
                marg = crf.apply(scores, image, dims)
            for n, index in enumerate(indices):
                label, (h, w) = gts[n]
                outs = {"net": scores[n, :, :h, :w]}
                if marg is not None:
                    outs["crf"] = marg[n, :, :h, :w]
                dist = void_distance(label, max(trimap_widths), ignore_label) if trimap else None
                for name in names:
                    pred = outs[name].argmax(0).cpu().numpy()
                    meters[name].add(pred, label)
                    if trimap:
                        trimap[name].add(pred, label, dist=dist)
                if on_image is not None:
                    if image is None:
                        image = data.transform.image_from_data(net.blobs[data.data_top])
                    img8 = image[n, :, :h, :w].permute(1, 2, 0).to(torch.uint8).cpu().numpy()
                    on_image(data.image_id(index), dict(outs, label=label, index=index,
                                                        image=img8))
                count += 1
                bar.update(1)
    bar.close()
    return TestResult(names, meters, trimap, count, time.perf_counter() - start, score_blob,
                      crf_blob, crf_source)
