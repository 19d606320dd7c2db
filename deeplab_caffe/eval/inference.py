"""Segment images of any size with a DeepLab test or deploy prototxt, batched.

A test prototxt's ImageSegData layer becomes an Input layer with the same tops (data, label,
data_dim), and MatWrite / SegAccuracy layers are dropped, so the net takes arrays.  Images go
in as DeepLab's test phase prepares them: BGR minus the mean, padded at the bottom/right with
the mean (0 after subtraction), data_dim = the image size.  The input size is the smallest one
at or above the image's for which the net's score blob comes out at the input size (n = 8k + 1
for LargeFOV, 8k + 2 for DeepLab, found by building the net on the meta device); images of a
batch share the largest such size.  When no size fits (a net that cannot reshape), the image is
padded or centre-cropped to the prototxt's own input size and pixels outside the crop get the
ignore label.
"""
import copy

import numpy as np
import torch

from ..errors import CaffeError
from ..proto.message import Message
from ..proto.spec import LayerSpec, NetSpec
from ..crf.params import CRFParams
from ..data.transform import DEEPLAB_MEAN_BGR, image_from_data
from .netutil import find_score_blobs

DROP_TYPES = ("MatWrite", "SegAccuracy", "Accuracy")


def deploy_spec(spec):
    """(NetSpec with array inputs, input tops, mean BGR, scale, fixed (H, W) or None)."""
    layers, tops, mean, scale, fixed = [], None, None, 1.0, None
    for ls in spec.layers:
        if ls.type in DROP_TYPES or ls.type.endswith("Loss"):
            continue
        if ls.type == "ImageSegData" and tops is None:
            t = ls.param_message("transform_param")
            p = ls.param_message("image_data_param")
            crop = int(t.get("crop_size", p.get("crop_size", 0)))
            mean = tuple(float(v) for v in t.getlist("mean_value")) or (0.0, 0.0, 0.0)
            if len(mean) == 1:
                mean = mean * 3
            scale = float(t.get("scale", p.get("scale", 1.0)))
            fixed = (crop, crop) if crop else None
            tops = list(ls.top)
            ls = LayerSpec(name=ls.name, type="Input", top=list(ls.top), where=ls.where)
        elif ls.type == "Input" and tops is None:
            tops = list(ls.top)
            shapes = [tuple(int(d) for d in s.getlist("dim"))
                      for s in ls.param_message("input_param").getlist("shape")]
            if shapes and len(shapes[0]) == 4:
                fixed = shapes[0][2:]
        layers.append(ls)
    if tops is None:
        raise CaffeError(f"net '{spec.name}' has neither an ImageSegData nor an Input layer "
                         "to feed images through")
    out = copy.copy(spec)
    out.layers = layers
    if mean is not None:
        # From ImageSegData: shape the new Input for the crop (or a LargeFOV training size).
        out = _with_input_size(out, tops, *(fixed or (321, 321)))
    return out, tops, mean or DEEPLAB_MEAN_BGR, scale, fixed


def _with_input_size(spec, tops, h, w, n=1):
    """A copy of a deploy spec whose Input layer is shaped for n images of h x w."""
    dims = {0: [n, 3, h, w], 1: [n, 1, h, w], 2: [n, 1, 1, 2]}
    out = copy.copy(spec)
    out.layers = list(spec.layers)
    for i, ls in enumerate(out.layers):
        if ls.type == "Input":
            shapes = [Message("BlobShape", {"dim": dims.get(k, [n, 1, h, w])})
                      for k in range(len(ls.top))]
            msg = Message("LayerParameter", {"input_param": Message("InputParameter",
                                                                    {"shape": shapes})})
            out.layers[i] = LayerSpec(name=ls.name, type="Input", top=list(ls.top),
                                      message=msg, where=ls.where)
            break
    return out


class Segmenter:
    """Scores (and CRF marginals) of RGB images of any size from a DeepLab net.

    Segmenter(prototxt, weights=None, device="cpu", defines=None, crf=None, score_blob=None,
              crf_blob=None, num_classes=None, mean_bgr=None, max_pad=64)
    crf: CRFParams to apply ``dense_crf`` when the net has no DenseCRF layer (a DenseCRF
    layer in the net is used as it is).  ``__call__(images)`` takes a list of (H, W, 3) uint8
    RGB arrays and returns one dict per image: "net" scores (C, H, W) and, with a CRF, "crf"
    marginals (C, H, W), float32 CPU tensors; pixels the net did not see (cropped away) are 0.
    """

    def __init__(self, prototxt, weights=None, device="cpu", defines=None, crf=None,
                 score_blob=None, crf_blob=None, num_classes=None, mean_bgr=None, max_pad=64):
        from ..net import Net
        from ..proto import parse_net
        spec = prototxt if isinstance(prototxt, NetSpec) else parse_net(prototxt,
                                                                       defines=defines)
        self.spec, self.tops, mean, self.scale, self.fixed = deploy_spec(spec)
        self.mean_bgr = tuple(mean_bgr) if mean_bgr is not None else mean
        self.max_pad = int(max_pad)
        self.net = Net(self.spec, weights=weights, phase="TEST", device=device)
        self.score_blob, self.crf_blob = find_score_blobs(self.net, self.tops[0], num_classes,
                                                          score_blob, crf_blob)
        c = self.net.blob_shapes[self.score_blob][1]
        if num_classes is not None and c != num_classes:
            raise CaffeError(f"score blob '{self.score_blob}' has {c} channels but "
                             f"num_classes is {num_classes}")
        self.crf = crf if self.crf_blob is None else None
        self.has_crf = self.crf_blob is not None or crf is not None
        self._out_size = {}

    # -- sizes ---------------------------------------------------------------------------------
    def _probe(self, n):
        """Spatial size of the score blob for an n x n input, via a meta-device build."""
        if n not in self._out_size:
            from ..net import Net
            try:
                net = Net(_with_input_size(self.spec, self.tops, n, n), device="meta")
                self._out_size[n] = tuple(net.blob_shapes[self.score_blob][2:])
            except (CaffeError, RuntimeError, KeyError):
                self._out_size[n] = None
        return self._out_size[n]

    def fit(self, size, axis):
        """Smallest input size >= size whose scores come out at that size, or None."""
        for n in range(int(size), int(size) + self.max_pad + 1):
            out = self._probe(n)
            if out is not None and out[axis] == n:
                return n
        return None

    # -- running -------------------------------------------------------------------------------
    def _prepare(self, img, H, W):
        """(data (3, H, W), valid (h, w), (y0, x0) offset into the image) for one RGB image."""
        h, w = img.shape[:2]
        y0 = (h - H) // 2 if h > H else 0
        x0 = (w - W) // 2 if w > W else 0
        crop = img[y0:y0 + H, x0:x0 + W, ::-1].astype(np.float32)       # RGB -> BGR
        crop = (crop - np.asarray(self.mean_bgr, np.float32)) * np.float32(self.scale)
        data = np.zeros((3, H, W), np.float32)
        hh, ww = crop.shape[:2]
        data[:, :hh, :ww] = crop.transpose(2, 0, 1)
        return data, (hh, ww), (y0, x0)

    def __call__(self, images):
        if not images:
            return []
        arrays = []
        for i, img in enumerate(images):
            a = np.asarray(img)
            if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
                raise CaffeError(f"image {i} must be (H, W, 3) uint8 RGB, got {a.shape} "
                                 f"{a.dtype}")
            arrays.append(a)
        H = self.fit(max(a.shape[0] for a in arrays), 0)
        W = self.fit(max(a.shape[1] for a in arrays), 1)
        if H is None or W is None:
            if self.fixed is None:
                raise CaffeError(f"net '{self.net.name}': no input size up to "
                                 f"{self.max_pad} px above the image gives scores of the "
                                 "input's size, and the prototxt has no fixed input size")
            H, W = self.fixed
        prepared = [self._prepare(a, H, W) for a in arrays]
        n = len(arrays)
        dev = self.net.device
        feeds = {self.tops[0]: torch.from_numpy(np.stack([p[0] for p in prepared])).to(dev)}
        dims = torch.tensor([p[1] for p in prepared], dtype=torch.float32)
        if len(self.tops) > 1:
            feeds[self.tops[1]] = torch.full((n, 1, H, W), 255.0, device=dev)
        if len(self.tops) > 2:
            feeds[self.tops[2]] = dims.view(n, 1, 1, 2).to(dev)
        feeds = {k: v for k, v in feeds.items() if k in self.net.inputs}
        with torch.no_grad():
            self.net.forward(**feeds)
            scores = self.net.blobs[self.score_blob]
            if tuple(scores.shape[2:]) != (H, W):
                raise CaffeError(f"score blob '{self.score_blob}' is {tuple(scores.shape[2:])}"
                                 f" for a {H}x{W} input; name the upsampled scores with "
                                 "--score-blob")
            marg = None
            if self.crf_blob is not None:
                marg = self.net.blobs[self.crf_blob]
            elif self.crf is not None:
                img = image_from_data(feeds[self.tops[0]], self.mean_bgr, self.scale)
                marg = self.crf.apply(scores, img, dims.to(dev))
        results = []
        for k, (a, (_, (hh, ww), (y0, x0))) in enumerate(zip(arrays, prepared)):
            out = {}
            for key, blob in (("net", scores), ("crf", marg)):
                if blob is None:
                    continue
                full = torch.zeros((blob.shape[1],) + a.shape[:2], dtype=torch.float32)
                full[:, y0:y0 + hh, x0:x0 + ww] = blob[k, :, :hh, :ww].float().cpu()
                out[key] = full
            out["valid"] = (y0, x0, hh, ww)
            results.append(out)
        return results


def labels_of(result, key, ignore_label=255):
    """(H, W) uint8 argmax of result[key], ignore_label outside the region the net saw."""
    y0, x0, hh, ww = result["valid"]
    lab = np.full(result[key].shape[1:], ignore_label, np.uint8)
    lab[y0:y0 + hh, x0:x0 + ww] = result[key][:, y0:y0 + hh, x0:x0 + ww].argmax(0).numpy()
    return lab


__all__ = ["Segmenter", "CRFParams", "deploy_spec", "labels_of"]
