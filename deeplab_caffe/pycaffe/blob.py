"""pycaffe's Blob: ``.data`` / ``.diff`` as writable numpy arrays that the next forward and
backward read, as Caffe's SyncedMemory gives them.

A Blob holds a torch tensor per side (data, diff) through a ``Slot``.  On the CPU the numpy array
is the tensor's own memory (``Tensor.numpy()``), so writes need no sync.  On a GPU the numpy array
is a host mirror: reading ``.data`` copies the device tensor to the host (head at CPU), and
``push()`` (called by the net before it runs) copies a mirror back if it was handed out since.
"""
import numpy as np
import torch


class Slot:
    """One side (data or diff) of a blob: ``get()`` the tensor, ``set(tensor)`` replace it."""

    def __init__(self, get, set_):
        self.get, self.set = get, set_
        self._host = None          # host mirror of a device tensor, handed out to the user

    def array(self):
        t = self.get()
        if t.device.type == "cpu":
            self._host = None
            return t.detach().numpy()
        # Head at the host until the next run pushes it: every look gets the same array.
        if self._host is None or self._host[0] is not t:
            self._host = (t, t.detach().cpu().numpy())
        return self._host[1]

    def push(self):
        """Copy a handed-out host mirror back to its device tensor (SyncedMemory's to_gpu)."""
        if self._host is not None:
            t, host = self._host
            if t is self.get():
                t.data.copy_(torch.from_numpy(host))
            self._host = None


class Blob:
    """Caffe's Blob as pycaffe shows it."""

    def __init__(self, data_slot, diff_slot):
        self._data, self._diff = data_slot, diff_slot

    @property
    def data(self):
        return self._data.array()

    @property
    def diff(self):
        return self._diff.array()

    @property
    def shape(self):
        return tuple(self._data.get().shape)

    @property
    def count(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def _legacy(self, axis):
        # Caffe's LegacyShape: num/channels/height/width of a blob with up to 4 axes.
        shape = self.shape
        if len(shape) > 4:
            raise ValueError(f"blob of shape {shape} has more than 4 axes: use .shape")
        return shape[axis] if axis < len(shape) else 1

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))

    def reshape(self, *shape):
        """Caffe's Blob::Reshape: new (uninitialized in Caffe, zero here) memory when the shape
        changes; the net's next ``reshape()``/``forward()`` propagates it."""
        shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"Blob.reshape: negative dimension in {shape}")
        for slot in (self._data, self._diff):
            t = slot.get()
            if tuple(t.shape) != shape:
                slot.set(torch.zeros(shape, dtype=t.dtype, device=t.device))

    def push(self):
        self._data.push()
        self._diff.push()

    def __repr__(self):
        return f"Blob(shape={self.shape})"
