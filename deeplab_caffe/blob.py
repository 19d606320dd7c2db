"""Caffe's Blob as pycaffe shows it, the one class for every blob Python code touches: the
bottoms, tops and learnable ``self.blobs`` a Python layer receives, and pycaffe's ``net.blobs``,
``net.params`` and ``net.layers[i].blobs``.

``.data`` / ``.diff`` are writable numpy arrays that the next forward and backward read, as
Caffe's SyncedMemory gives them.  A Blob holds a torch tensor per side (data, diff) through a
``Slot``.  On the CPU the numpy array is the tensor's own memory (``Tensor.numpy()``), so writes
need no sync.  On a GPU the numpy array is a host mirror: reading ``.data`` copies the device
tensor to the host (head at CPU), and ``push()`` (called before the engine reads the tensor
again) copies a mirror back if it was handed out since.

``BlobVec`` is a layer's blob vector (Caffe's ``Layer::blobs()``, pycaffe's ``BlobVec``): its
learnable blobs as Blobs, ``add_blob(*shape)`` appending a zero-filled one.
"""
import itertools

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


def _own_slot(tensor):
    """A Slot over memory of the blob's own (a Python layer's bottoms and tops)."""
    box = [tensor]

    def set_(t):
        box[0] = t
    return Slot(lambda: box[0], set_)


class Blob:
    """Caffe's Blob as pycaffe shows it."""

    def __init__(self, data_slot, diff_slot):
        self._data, self._diff = data_slot, diff_slot

    @classmethod
    def holding(cls, data=None, shape=(0,)):
        """A blob with memory of its own: ``data`` (a tensor, used as it is) or zeros of
        ``shape``; its diff zeros of the same shape."""
        if data is None:
            data = torch.zeros(shape, dtype=torch.float32)
        return cls(_own_slot(data), _own_slot(torch.zeros_like(data)))

    @property
    def data(self):
        return self._data.array()

    @data.setter
    def data(self, value):
        # pycaffe's data is a read-only attribute; assigning here fills it, as data[...] = does.
        self.data[...] = value

    @property
    def diff(self):
        return self._diff.array()

    @diff.setter
    def diff(self, value):
        self.diff[...] = value

    # -- the engine's side: the tensors themselves ------------------------------------------
    @property
    def data_tensor(self):
        return self._data.get()

    @data_tensor.setter
    def data_tensor(self, t):
        self._data.set(t)

    @property
    def diff_tensor(self):
        return self._diff.get()

    @diff_tensor.setter
    def diff_tensor(self, t):
        self._diff.set(t)

    @property
    def shape(self):
        return tuple(self._data.get().shape)

    @property
    def count(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def _legacy(self, axis):
        # Caffe's Blob::LegacyShape(i): shape(i), or 1 past the blob's axes (a shape (6,) blob
        # has num 6, channels/height/width 1); CHECK num_axes <= 4.
        shape = self.shape
        if len(shape) > 4:
            raise ValueError(f"blob of shape {shape} has more than 4 axes: num/channels/height/"
                             "width are for blobs of up to 4 axes; use .shape")
        return shape[axis] if axis < len(shape) else 1

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))

    def reshape(self, *shape):
        """Caffe's Blob::Reshape: new (uninitialized in Caffe, zero here) memory when the shape
        changes; a net's next ``reshape()``/``forward()`` propagates it."""
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


def _param_blob(layer, j):
    """Blob j of ``layer`` (a Parameter of its ``blobs``; its diff the Parameter's ``grad``),
    looked up at each use, since sharing (Net::ShareTrainedLayersWith, ``param { name }``)
    replaces the Parameter."""
    def get_diff():
        p = layer.blobs[j]
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        return p.grad

    def set_data(t):
        layer.blobs[j].data = t

    def set_diff(t):
        layer.blobs[j].grad = t
    return Blob(Slot(lambda: layer.blobs[j], set_data), Slot(get_diff, set_diff))


class BlobVec:
    """A layer's learnable blobs as Blobs (pycaffe's ``layer.blobs``, a Python layer's
    ``self.blobs``), read live from ``layer.blobs``.  Every BlobVec of a layer hands out the same
    Blob objects (kept on the layer), so a Python layer's blob and ``net.params[name][j]`` are one
    blob with one host mirror, as in Caffe."""

    def __init__(self, layer):
        self._layer = layer
        self._views = layer.__dict__.setdefault("_blob_views", {})

    def __len__(self):
        return len(self._layer.blobs)

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(len(self)))]
        n = len(self)
        if not -n <= j < n:
            raise IndexError(f"blob index {j} out of range: layer '{self._layer.name}' has "
                             f"{n} blob(s)")
        j = j % n
        if j not in self._views:
            self._views[j] = _param_blob(self._layer, j)
        return self._views[j]

    def __iter__(self):
        return (self[j] for j in range(len(self)))

    def add_blob(self, *shape):
        """pycaffe's BlobVec.add_blob: append a blob of ``shape``, zero-filled (a new Caffe
        Blob's memory is zeroed on first use).  Added in a Python layer's setup, it is one of the
        layer's learnable params, as Caffe's Net::Init appends them after SetUp."""
        shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"BlobVec.add_blob: negative dimension in {shape}")
        anchor = next(itertools.chain(self._layer.parameters(), self._layer.buffers()), None)
        device = anchor.device if anchor is not None else None
        self._layer.blobs.append(torch.nn.Parameter(torch.zeros(shape, device=device)))

    def push(self):
        """Push the host mirrors of this layer's Blobs handed out so far (see Slot.push)."""
        for blob in self._views.values():
            blob.push()

    def __repr__(self):
        return f"BlobVec({[b.shape for b in self]})"
