"""PReLU: top = max(x, 0) + a * min(x, 0) with a learned slope per channel (axis 1), or one
shared slope (``channel_shared``: a 0-axis blob, as Caffe's vector<int>(0) shape).  The filler
defaults to constant 0.25.  At x = 0 the bottom's gradient is the slope and the slope's is 0
(Caffe's (x > 0) and (x <= 0) masks)."""
import torch

from ..proto.message import Message
from ._neuron import NeuronLayer
from ._params import scalar
from .base import register


@register("PReLU")
class PReLULayer(NeuronLayer):
    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.channel_shared = bool(scalar(self.param("prelu_param"), "channel_shared", False))

    def layer_setup(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2:
            raise self.error(f"PReLU needs a bottom of at least 2 axes (N, C, ...), got shape "
                             f"{shape}")
        if len(shape) > 4:
            # Caffe reads the channels with Blob::channels(), a legacy 4-axis accessor.
            raise self.error(f"PReLU reads channels with Caffe's legacy accessor, which takes "
                             f"at most 4 axes; got shape {shape}")
        p = self.param("prelu_param")
        filler = p.get("filler") or Message("FillerParameter", {"type": "constant",
                                                                "value": 0.25})
        blob_shape = () if self.channel_shared else (shape[1],)
        self.blobs.append(self.filled_blob(blob_shape, Message("PReLUParameter",
                                                                {"filler": filler}), "filler"))
        return [shape]

    def forward(self, x):
        slope = self.blobs[0].to(x.dtype)
        if not self.channel_shared:
            if slope.numel() != x.shape[1]:
                raise self.error(f"PReLU has {slope.numel()} slopes for {x.shape[1]} channels")
            slope = slope.reshape((1, -1) + (1,) * (x.dim() - 2))
        return (torch.where(x > 0, x, x * slope),)
