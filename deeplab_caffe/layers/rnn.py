"""RNN: Caffe's simple recurrent net (an Elman network with a tanh output layer).

    h_t = tanh(W_hh (cont_t * h_{t-1}) + W_xh x_t + b_h [+ W_xh_static x_static])
    o_t = tanh(W_ho h_t + b_o)
Top: o (T, N, num_output).  Recurrent state: h (expose_hidden: bottom h_0, top h_T).
Blobs, in the order of rnn_layer.cpp's unrolled net (its x_transform, W_xh_x_static, W_hh_h_0
and W_ho_h_1 layers own them): W_xh (num_output, x_dim), b_h (num_output,),
[W_xh_static (num_output, static_dim)], W_hh (num_output, num_output),
W_ho (num_output, num_output), b_o (num_output,).
"""
import torch

from .base import register
from .recurrent import RecurrentLayer, static_transform, time_major_transform


@register("RNN")
class RNNLayer(RecurrentLayer):
    recurrent_names = ("h_0",)

    def blob_layout(self):
        D = self.num_output
        layout = [("W_xh", (D, self.x_dim), "weight_filler"), ("b_h", (D,), "bias_filler")]
        if self.static_input:
            layout.append(("W_xh_static", (D, self.static_dim), "weight_filler"))
        return layout + [("W_hh", (D, D), "weight_filler"), ("W_ho", (D, D), "weight_filler"),
                         ("b_o", (D,), "bias_filler")]

    def unrolled_forward(self, x, cont, x_static, states):
        params = dict(zip(self.blob_names, self.blobs))
        W_xh_x = time_major_transform(x, params["W_xh"], params["b_h"])
        W_xh_x_static = (static_transform(x_static, params["W_xh_static"])
                         if self.static_input else None)
        h = states[0]
        outputs = []
        for t in range(self.T):
            h_conted = h * cont[t:t + 1].unsqueeze(-1)
            # Eltwise SUM adds its bottoms in order: W_hh_h, W_xh_x_t, W_xh_x_static.
            h_input = h_conted @ params["W_hh"].t() + W_xh_x[t:t + 1]
            if W_xh_x_static is not None:
                h_input = h_input + W_xh_x_static
            h = torch.tanh(h_input)
            outputs.append(torch.tanh(h @ params["W_ho"].t() + params["b_o"]))
        return torch.cat(outputs, 0), [h]
