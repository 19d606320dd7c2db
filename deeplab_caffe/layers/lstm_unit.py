"""LSTMUnit: one LSTM timestep, the cell of Caffe's unrolled LSTM.

Bottoms: c_{t-1} (1, N, D), the gate inputs (1, N, 4D) in Caffe's order i, f, o, g, and cont_t
(1, N).  Tops: c_t and h_t, both (1, N, D).
    i = sigmoid(i'), f = cont * sigmoid(f') (exactly 0 where cont == 0), o = sigmoid(o'),
    g = tanh(g');  c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t).
No parameters.  The backward is Caffe's own (``_LSTMUnitFunction``): where cont is neither 0
nor 1 it is not the true gradient for the forget gate (Caffe uses f * (1 - f) with the
cont-scaled f); the sequence indicators get no gradient.
"""
import torch
from torch.autograd.function import once_differentiable

from .base import Layer, register


def caffe_sigmoid(x):
    return 1.0 / (1.0 + torch.exp(-x))


def caffe_tanh(x):
    # lstm_unit_layer.cpp writes tanh through its sigmoid; kept for Caffe's rounding.
    return 2.0 * caffe_sigmoid(2.0 * x) - 1.0


def _gate_values(gates, cont):
    """(i, f, o, g) of Caffe's LSTMUnit from the gate inputs and cont (1, N)."""
    i, f, o, g = gates.chunk(4, dim=-1)
    cont = cont.unsqueeze(-1)
    f = torch.where(cont == 0, torch.zeros_like(f), cont * caffe_sigmoid(f))
    return caffe_sigmoid(i), f, caffe_sigmoid(o), caffe_tanh(g)


class _LSTMUnitFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, c_prev, gates, cont):
        i, f, o, g = _gate_values(gates, cont)
        c = f * c_prev + i * g
        h = o * caffe_tanh(c)
        ctx.save_for_backward(c_prev, gates, cont, c)
        return c, h

    @staticmethod
    @once_differentiable
    def backward(ctx, c_diff, h_diff):
        c_prev, gates, cont, c = ctx.saved_tensors
        i, f, o, g = _gate_values(gates, cont)
        tanh_c = caffe_tanh(c)
        c_diff = torch.zeros_like(c) if c_diff is None else c_diff
        h_diff = torch.zeros_like(c) if h_diff is None else h_diff
        c_term = c_diff + h_diff * o * (1 - tanh_c * tanh_c)
        gates_diff = torch.cat([c_term * g * i * (1 - i),
                                c_term * c_prev * f * (1 - f),
                                h_diff * tanh_c * o * (1 - o),
                                c_term * i * (1 - g * g)], dim=-1)
        return c_term * f, gates_diff, None


def lstm_unit(c_prev, gates, cont):
    """(c_t, h_t) of one LSTM step with Caffe's forward and backward; ``cont`` gets no
    gradient."""
    return _LSTMUnitFunction.apply(c_prev, gates, cont.detach().to(gates.dtype))


@register("LSTMUnit")
class LSTMUnitLayer(Layer):
    exact_num_bottom = 3
    exact_num_top = 2

    def _check(self, shapes):
        """Caffe's LSTMUnitLayer::Reshape checks."""
        N = shapes[0][1] if len(shapes[0]) > 1 else None
        for k, s in enumerate(shapes):
            axes = 2 if k == 2 else 3
            if len(s) != axes or s[0] != 1 or s[1] != N:
                raise self.error(f"bottom[{k}] must have shape (1, {N}{', ...' * (k < 2)}) with "
                                 f"{axes} axes, got {tuple(s)}")
        D = shapes[0][2]
        if shapes[1][2] != 4 * D:
            raise self.error(f"bottom[1] (gate inputs) must have 4 * {D} = {4 * D} channels, "
                             f"got {shapes[1][2]}")

    def layer_setup(self, bottom_shapes):
        shapes = [tuple(s) for s in bottom_shapes]
        self._check(shapes)
        return [shapes[0], shapes[0]]

    def forward(self, c_prev, gates, cont):
        self._check([tuple(c_prev.shape), tuple(gates.shape), tuple(cont.shape)])
        return lstm_unit(c_prev, gates, cont)
