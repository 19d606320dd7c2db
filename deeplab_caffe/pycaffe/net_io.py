"""pycaffe's Net weight methods over our Net's (copy_from, save, save_hdf5, load_hdf5,
share_with)."""


class NetIOMixin:
    def copy_from(self, filename):
        """Caffe's CopyTrainedLayersFrom: .caffemodel or HDF5 (told by content)."""
        self._push_host()
        self._core.copy_from(str(filename))

    def save(self, filename):
        """pycaffe's Net.save: a binary NetParameter whatever the file's name (no diffs)."""
        self._push_host()
        self._core.save(str(filename), format="v2")

    def save_hdf5(self, filename):
        self._push_host()
        self._core.save(str(filename), format="hdf5")

    def load_hdf5(self, filename):
        self._push_host()
        self._core.copy_from(str(filename))

    def share_with(self, other):
        """Caffe's ShareTrainedLayersWith: this net's layers use ``other``'s weights."""
        self._push_host()
        other._push_host()
        self._core.share_trained_layers_with(other._core)
