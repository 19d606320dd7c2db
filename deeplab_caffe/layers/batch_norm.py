"""BatchNorm as BVLC Caffe has it: normalization only (a Scale layer after it learns gamma and
beta), per channel (axis 1), over the batch and the spatial axes.

Three blobs, as Caffe stores them: blobs[0] the running sum of means, blobs[1] the running sum of
unbiased variances, blobs[2] (shape (1,)) their common weight; the statistics used are
blobs[0] / blobs[2] and blobs[1] / blobs[2] (0 when blobs[2] is 0).  Each forward that uses batch
statistics updates them: blobs[2] = maf * blobs[2] + 1, blobs[0] = mean + maf * blobs[0],
blobs[1] = m / (m - 1) * var + maf * blobs[1] (maf = moving_average_fraction, m = count /
channels, the biased batch variance var).  top = (x - mean) / sqrt(var + eps).

``use_global_stats`` defaults to true in TEST and false in TRAIN.  The blobs are never learned:
as Caffe's LayerSetUp, the layer sets lr_mult 0 on each param it lacks and refuses another value.
With global statistics the backward is top_diff / sqrt(var + eps); with batch statistics it is
the full batch-norm gradient (Caffe's closed form, which autograd's equals).
"""
import torch

from ..proto.spec import ParamSpec
from ._params import scalar
from .base import Layer, register


@register("BatchNorm")
class BatchNormLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.param("batch_norm_param")
        self.use_global_stats = bool(scalar(p, "use_global_stats", phase == "TEST"))
        self.moving_average_fraction = float(scalar(p, "moving_average_fraction", 0.999))
        self.eps = float(scalar(p, "eps", 1e-5))

    def layer_setup(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2:
            # Caffe's Reshape reads shape(1), which fails for fewer than 2 axes.
            raise self.error(f"BatchNorm needs a bottom of at least 2 axes (N, C, ...), got "
                             f"shape {shape}")
        self.channels = shape[1]
        for blob_shape in ((self.channels,), (self.channels,), (1,)):
            self.blobs.append(torch.nn.Parameter(torch.zeros(blob_shape)))
        self._freeze_statistics()
        return [shape]

    def _freeze_statistics(self):
        """Caffe masks the statistics from the solver: lr_mult 0 for each of the three blobs."""
        params = list(self.spec.param)
        for i in range(len(self.blobs)):
            if i == len(params):
                params.append(ParamSpec(lr_mult=0.0, has_lr_mult=True))
            elif params[i].lr_mult != 0:
                raise self.error(f"Cannot configure batch normalization statistics as layer "
                                 f"parameters (param {i} has lr_mult {params[i].lr_mult}; it "
                                 "must be 0)")
        self.spec.param = params

    def forward(self, x):
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise self.error(f"BatchNorm was set up for {self.channels} channels, the bottom "
                             f"has shape {tuple(x.shape)}")
        rows = x.reshape(x.shape[0], self.channels, -1)
        if self.use_global_stats:
            mean, var = self._global_statistics(x.dtype)
        else:
            mean = rows.mean(dim=(0, 2))
            var = (rows - mean[:, None]).pow(2).mean(dim=(0, 2))
            self._update_moving_average(mean.detach(), var.detach(), x.numel())
        top = (rows - mean[:, None]) / torch.sqrt(var + self.eps)[:, None]
        return (top.reshape(x.shape),)

    def _global_statistics(self, dtype):
        weight = float(self.blobs[2].detach().reshape(-1)[0])
        factor = 0.0 if weight == 0 else 1.0 / weight
        return (self.blobs[0].detach().to(dtype) * factor,
                self.blobs[1].detach().to(dtype) * factor)

    def _update_moving_average(self, mean, var, count):
        maf = self.moving_average_fraction
        m = count // self.channels
        bias_correction = m / (m - 1) if m > 1 else 1.0
        with torch.no_grad():
            self.blobs[2].mul_(maf).add_(1)
            self.blobs[0].mul_(maf).add_(mean.to(self.blobs[0].dtype))
            self.blobs[1].mul_(maf).add_((bias_correction * var).to(self.blobs[1].dtype))
