"""GainChannel (DeepLab v1 GAIN_CHANNEL): a learnable non-negative gain per channel, with a
backward that pushes small gains towards zero (whole-channel pruning).

``gain_channel_param { num_output_nz (required, 1..C) drift (0) stdev (0) gain_filler (required)
norm_mean (true) thresh (1e-3) }``; one blob (1, C, 1, 1).  As the fork's C++:
  * forward: the stored gains are first clipped to >= thresh and, with norm_mean, rescaled to
    mean 1 (sum 0 gives all ones): the blob itself changes, every forward; top = bottom * gain;
  * backward: d gain = sum over n, h, w of top diff * bottom (in place: the bottom recovered as
    top / gain), plus drift for each gain below the num_output_nz-th largest, plus stdev * N(0, 1)
    noise (torch's generator), then with norm_mean minus its mean; d bottom = top diff * gain.
The gain's diff is computed as in the C++ whatever the solver asks (its ``if (1 || ...)``).
Difference: the C++ overwrites the gain's diff on each backward, autograd adds to it, so with
iter_size > 1 (or a shared gain) every backward counts here, only the last one there.
"""
import torch

from ._params import require_4d, scalar, required
from .base import Layer, register


class _Gain(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gain, layer):
        ctx.layer = layer
        ctx.save_for_backward(x, gain)
        return x * gain

    @staticmethod
    def backward(ctx, dy):
        x, gain = ctx.saved_tensors
        return dy * gain, ctx.layer.gain_diff(dy, x, gain), None


@register("GainChannel")
class GainChannelLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("gain_channel_param")
        self.p = p
        self.num_output_nz = int(required(self, "gain_channel_param", "num_output_nz"))
        self.drift = float(scalar(p, "drift", 0.0))
        self.stdev = float(scalar(p, "stdev", 0.0))
        self.thresh = float(scalar(p, "thresh", 1e-3))
        self.norm_mean = bool(scalar(p, "norm_mean", True))
        for what, v in (("drift", self.drift), ("stdev", self.stdev)):
            if v < 0:
                raise self.error(f"{what} must not be negative, got {v}")
        if self.thresh <= 0:
            raise self.error(f"thresh must be positive, got {self.thresh}")

    def layer_setup(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        require_4d(self, s)
        if not 0 < self.num_output_nz <= s[1]:
            raise self.error(f"num_output_nz must be in [1, {s[1]}] (the channels), got "
                             f"{self.num_output_nz}")
        if not self.p.has("gain_filler"):
            raise self.error("GainChannel needs gain_filler (typically constant 1)")
        self.blobs.append(self.filled_blob((1, s[1], 1, 1), self.p, "gain_filler"))
        return [s]

    @torch.no_grad()
    def project_gain(self):
        """The C++'s forward-time update of the stored gains."""
        g = self.blobs[0]
        g.clamp_(min=self.thresh)
        if self.norm_mean:
            total = g.sum()
            if total > 0:
                g.mul_(g.numel() / total)
            else:
                g.fill_(1)

    def gain_diff(self, dy, x, gain):
        d = (dy * x).sum((0, 2, 3), keepdim=True)
        if self.drift > 0:
            kth = torch.sort(gain.reshape(-1), descending=True).values[self.num_output_nz - 1]
            d = d + self.drift * (gain < kth).to(d.dtype)
        if self.stdev > 0:
            d = d + self.stdev * torch.randn(d.shape, dtype=d.dtype).to(d.device)
        if self.norm_mean:
            d = d - d.mean()
        return d

    def forward(self, x):
        require_4d(self, tuple(x.shape))
        if x.shape[1] != self.blobs[0].shape[1]:
            raise self.error(f"bottom has {x.shape[1]} channels, the gains "
                             f"{self.blobs[0].shape[1]}")
        self.project_gain()
        return (_Gain.apply(x, self.blobs[0], self),)
