"""Caffe's RecurrentLayer: the abstract base of RNN and LSTM (not a layer type of its own).

Caffe unrolls the recurrence into an internal Net over the T timesteps; we compute the same
unrolled net directly with torch ops (subclasses' ``unrolled_forward``), keeping what is
visible from outside exactly as Caffe's:
  * bottoms: x (T, N, ...), cont (T, N) (0 where a sequence starts), an optional static input
    x_static (N, ...); with ``expose_hidden`` the initial recurrent states follow (RNN: h_0,
    LSTM: h_0 then c_0), each (1, N, num_output);
  * tops: the output (T, N, num_output); with ``expose_hidden`` the final states follow in the
    same order;
  * blobs: the unrolled net's owned parameters in its layer order, with the internal
    ``param { name }`` each has (``blob_names``), so a Caffe .caffemodel of the layer loads.

Caffe's quirks kept on purpose:
  * without ``expose_hidden`` the state carries over between forwards: h_0 (and c_0) of a call
    is h_T (c_T) of the previous one (zeros at first; ``reset()`` is Caffe's Reset()); only
    cont = 0 starts a sequence afresh.  No gradient crosses calls.
  * with ``expose_hidden`` the hidden bottoms and tops share data only (Blob::ShareData, not
    ShareDiff): no gradient flows into h_0 / c_0 nor back from h_T / c_T.
  * no gradient to cont (Caffe refuses one: AllowForceBackward is false for bottom 1).
  * T is fixed at set-up ("input number of timesteps changed"); N may change between forwards,
    the carried state then following Blob::Reshape's reuse of memory (``_carried_state``).
"""
from ._params import count, scalar
from .base import Layer


class RecurrentLayer(Layer):
    # Set by subclasses: the recurrent states, Caffe's RecurrentInputBlobNames (h_0 / c_0).
    recurrent_names = ()

    def __init__(self, spec, phase="TEST"):
        super().__init__(spec, phase)
        p = self.p = self.param("recurrent_param")
        self.num_output = int(scalar(p, "num_output", 0))
        if self.num_output <= 0:
            raise self.error(f"{self.spec.type} needs recurrent_param {{ num_output }} > 0, got "
                             f"{self.num_output}")
        self.expose_hidden = bool(scalar(p, "expose_hidden", False))
        # debug_info only switches on the unrolled net's log lines in Caffe: nothing to compute.
        self.debug_info = bool(scalar(p, "debug_info", False))
        num_hidden = len(self.recurrent_names) if self.expose_hidden else 0
        # Caffe's MinBottomBlobs / MaxBottomBlobs / ExactNumTopBlobs depend on expose_hidden.
        self.min_num_bottom = 2 + num_hidden
        self.max_num_bottom = 3 + num_hidden
        self.exact_num_top = 1 + num_hidden
        self.T = self.static_input = self.x_dim = self.static_dim = None
        self.blob_names = []
        # The h_T (c_T) blobs' memory as Caffe's Blob keeps it: flat, grown only when a
        # Reshape needs more (capacity), so a smaller N keeps what the first streams held.
        self._memory = None
        self._size = 0

    # -- set-up ------------------------------------------------------------------------------
    def layer_setup(self, bottom_shapes):
        shapes = [tuple(s) for s in bottom_shapes]
        self.T = shapes[0][0] if shapes[0] else None
        num_hidden = len(self.recurrent_names) if self.expose_hidden else 0
        self.static_input = len(shapes) > 2 + num_hidden
        self._check_shapes(shapes)
        self.x_dim = count(shapes[0], 2)
        self.static_dim = count(shapes[2], 1) if self.static_input else None
        if len(self.blobs) == 0:
            for name, shape, filler in self.blob_layout():
                self.blobs.append(self.filled_blob(shape, self.p, filler))
        self.blob_names = [name for name, _, _ in self.blob_layout()]
        N, D = shapes[0][1], self.num_output
        return [(self.T, N, D)] + [(1, N, D)] * (self.exact_num_top - 1)

    def _check_shapes(self, shapes):
        """Caffe's RecurrentLayer::Reshape checks, with the layer named."""
        x, cont = shapes[0], shapes[1]
        if len(x) < 2:
            raise self.error(f"bottom[0] must have at least 2 axes (#timesteps, #streams, ...), "
                             f"got shape {x}")
        if x[0] != self.T:
            raise self.error(f"input number of timesteps changed: {x[0]}, set up with {self.T}")
        N = x[1]
        if len(cont) != 2 or tuple(cont) != (self.T, N):
            raise self.error(f"bottom[1] (cont) must have shape (#timesteps, #streams) = "
                             f"{(self.T, N)}, got {cont}")
        if self.static_input and (len(shapes[2]) < 1 or shapes[2][0] != N):
            raise self.error(f"bottom[2] (x_static) must have {N} streams on axis 0, got shape "
                             f"{shapes[2]}")
        offset = 2 + bool(self.static_input)
        for i in range(offset, len(shapes)):
            if shapes[i] != (1, N, self.num_output):
                raise self.error(f"bottom[{i}] shape must match hidden state input shape "
                                 f"{(1, N, self.num_output)}, got {shapes[i]}")

    def blob_layout(self):
        """[(param name, shape, filler field)] in Caffe's blob order; see the subclasses."""
        raise NotImplementedError

    # -- forward -----------------------------------------------------------------------------
    def forward(self, x, cont, *rest):
        self._check_shapes([tuple(b.shape) for b in (x, cont) + rest])
        x_static = rest[0] if self.static_input else None
        self._check_input_size("bottom[0] (x)", x, 2, self.x_dim)
        if self.static_input:
            self._check_input_size("bottom[2] (x_static)", x_static, 1, self.static_dim)
        # No gradient into the sequence indicators (Caffe: "Cannot backpropagate to sequence
        # indicators"); they scale the state, so they take x's dtype.
        cont = cont.detach().to(x.dtype)
        N = x.shape[1]
        if self.expose_hidden:
            states = [h.detach() for h in rest[1 if self.static_input else 0:]]
        else:
            states = self._carried_state(N, x)
        out, finals = self.unrolled_forward(x, cont, x_static, states)
        finals = [f.detach() for f in finals]
        if self.expose_hidden:
            return (out,) + tuple(finals)
        for memory, final in zip(self._memory, finals):
            memory[:final.numel()] = final.reshape(-1)
        return (out,)

    def _check_input_size(self, what, t, axis, dim):
        """The InnerProduct's K check: a Reshape may change N, not the input size."""
        if count(tuple(t.shape), axis) != dim:
            raise self.error(f"{what} of shape {tuple(t.shape)} does not match the weights' "
                             f"input size {dim}")

    def _carried_state(self, N, like):
        """h_0 (c_0) for a forward without expose_hidden: the previous forward's h_T (c_T).

        When N changes, Caffe's Blob::Reshape keeps the memory while the new count fits in
        what it holds (the first streams, or values left by an earlier larger batch) and
        allocates zeros when it needs more."""
        self._size = N * self.num_output
        if self._memory is None or self._memory[0].numel() < self._size:
            self._memory = [like.new_zeros(self._size) for _ in self.recurrent_names]
        self._memory = [m.to(like) for m in self._memory]
        return [m[:self._size].view(1, N, self.num_output).clone() for m in self._memory]

    def reset(self):
        """Caffe's RecurrentLayer::Reset: zero the carried hidden state (the current count)."""
        for m in self._memory or ():
            m[:self._size] = 0

    def unrolled_forward(self, x, cont, x_static, states):
        """(output (T, N, num_output), [final states]) from the initial ``states``."""
        raise NotImplementedError


def time_major_transform(x, weight, bias=None):
    """Caffe's InnerProduct with axis 2 over all timesteps at once: (T, N, ...) -> (T, N, M)."""
    y = x.reshape(x.shape[0], x.shape[1], -1) @ weight.t()
    return y if bias is None else y + bias


def static_transform(x_static, weight):
    """The static input's InnerProduct (axis 1, no bias), reshaped to one timestep (1, N, M)."""
    return (x_static.reshape(x_static.shape[0], -1) @ weight.t()).unsqueeze(0)
