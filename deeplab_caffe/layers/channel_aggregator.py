"""ChannelAggregator (DeepLab v1 CHANNEL_AGGREGATOR): maps scores (log-probabilities) of a larger
label space to a smaller one: output channel o = log sum exp of the input channels listed on line
o of a text file (a softmax-style OR of the fine classes).

``channel_aggregator_param { label_map_file (required) }``: one line per output channel, each the
input channel numbers; as the C++ reads it (istream >> int), a line's numbers end at the first
token that does not start with an integer, and a line without any number is an error.  Every
number must be in [0, C_in).  Bottom (N, C_in, H, W); top (N, lines, H, W).  A channel listed
twice on a line counts twice.  Gradient: the C++'s, exp(x_c - max) / Z per listing, which is the
exact derivative of the forward.
"""
import re

import torch

from ._params import require_4d, required
from .base import Layer, register

_INT = re.compile(r"\s*([+-]?\d+)")


def read_label_map(layer, path):
    """[[input channel, ...] per output channel] of a label_map_file."""
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise layer.error(f"cannot read label_map_file '{path}': {e.strerror}") from None
    if lines and lines[-1] == "":
        lines.pop()         # getline yields no line after the final newline
    groups = []
    for n, line in enumerate(lines, 1):
        labels, pos = [], 0
        while True:
            m = _INT.match(line, pos)
            if m is None:
                break
            labels.append(int(m.group(1)))
            pos = m.end()
        if not labels:
            raise layer.error(f"label_map_file '{path}' line {n}: no input channel listed")
        groups.append(labels)
    if not groups:
        raise layer.error(f"label_map_file '{path}' is empty")
    return groups


@register("ChannelAggregator")
class ChannelAggregatorLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        self.label_map = read_label_map(
            self, str(required(self, "channel_aggregator_param", "label_map_file")))

    def _check(self, shape):
        require_4d(self, shape)
        for o, group in enumerate(self.label_map):
            for c in group:
                if not 0 <= c < shape[1]:
                    raise self.error(f"label map line {o + 1} names input channel {c}, out of "
                                     f"range for {shape[1]} channels")

    def layer_setup(self, bottom_shapes):
        s = tuple(bottom_shapes[0])
        self._check(s)
        return [(s[0], len(self.label_map), s[2], s[3])]

    def forward(self, x):
        self._check(tuple(x.shape))
        outs = []
        for group in self.label_map:
            idx = torch.tensor(group, device=x.device)
            outs.append(torch.logsumexp(x.index_select(1, idx), dim=1))
        return (torch.stack(outs, 1),)
