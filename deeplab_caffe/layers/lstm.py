"""LSTM: Caffe's long short-term memory layer, unrolled over time.

    gate_input_t = W_hc (cont_t * h_{t-1}) + W_xc x_t + b_c [+ W_xc_static x_static]
    (c_t, h_t) = LSTMUnit(c_{t-1}, gate_input_t, cont_t)   (gates i, f, o, g; see lstm_unit.py)
Top: h (T, N, num_output).  Recurrent states: h and c (expose_hidden: bottoms h_0, c_0 and
tops h_T, c_T, in that order).
Blobs, in the order of lstm_layer.cpp's unrolled net (its x_transform, W_xc_x_static and
transform_1 layers own them): W_xc (4 num_output, x_dim), b_c (4 num_output,),
[W_xc_static (4 num_output, static_dim)], W_hc (4 num_output, num_output).
"""
import torch

from .base import register
from .lstm_unit import lstm_unit
from .recurrent import RecurrentLayer, static_transform, time_major_transform


@register("LSTM")
class LSTMLayer(RecurrentLayer):
    recurrent_names = ("h_0", "c_0")

    def blob_layout(self):
        D, G = self.num_output, 4 * self.num_output
        layout = [("W_xc", (G, self.x_dim), "weight_filler"), ("b_c", (G,), "bias_filler")]
        if self.static_input:
            layout.append(("W_xc_static", (G, self.static_dim), "weight_filler"))
        return layout + [("W_hc", (G, D), "weight_filler")]

    def unrolled_forward(self, x, cont, x_static, states):
        params = dict(zip(self.blob_names, self.blobs))
        W_xc_x = time_major_transform(x, params["W_xc"], params["b_c"])
        W_xc_x_static = (static_transform(x_static, params["W_xc_static"])
                         if self.static_input else None)
        h, c = states
        hs = []
        for t in range(self.T):
            cont_t = cont[t:t + 1]
            # Eltwise SUM adds its bottoms in order: W_hc_h, W_xc_x_t, W_xc_x_static.
            gate_input = (h * cont_t.unsqueeze(-1)) @ params["W_hc"].t() + W_xc_x[t:t + 1]
            if W_xc_x_static is not None:
                gate_input = gate_input + W_xc_x_static
            c, h = lstm_unit(c, gate_input, cont_t)
            hs.append(h)
        return torch.cat(hs, 0), [h, c]
