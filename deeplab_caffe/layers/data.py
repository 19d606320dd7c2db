"""Data: batches of Datum records from an LMDB or LevelDB database (BVLC's DataLayer).

Tops: data (batch_size, C, h, w) after transform_param (Caffe's DataTransformer, see
``data.data_transformer``), and optionally label (batch_size,).  Records are read in key order
and go round at the end; each batch takes its shape from its first record (so batches of
differently sized records work with batch_size 1, as in Caffe).  Batches are prefetched on a
thread (data_param.prefetch, default 4).  data_param.rand_skip is ignored, as BVLC master's
DataLayer ignores it; backend defaults to LEVELDB as in caffe.proto.
"""
import numpy as np

from ..data.data_transformer import DataTransformer, layer_transform_param
from ..data.datum import datum_array, decode_datum
from ..data.db import Reader
from ..errors import CaffeError
from .base import register
from .prefetch import PrefetchingDataLayer


@register("Data")
class DataDBLayer(PrefetchingDataLayer):
    min_num_top = 1
    max_num_top = 2

    def layer_setup(self, bottom_shapes):
        p = self.param("data_param")
        self.batch_size = int(p.get("batch_size", 0))
        if self.batch_size <= 0:
            raise self.error(f"data_param.batch_size must be positive, got {self.batch_size}")
        self.prefetch = int(p.get("prefetch", 4))
        source = p.get("source")
        if not source:
            raise self.error("data_param.source is not set")
        try:
            self.reader = Reader(source, p.get("backend", "LEVELDB"))
            self.transformer = DataTransformer(layer_transform_param(self.spec, "data_param"),
                                               self.phase, self.make_rng())
            c, h, w = self.transformer.output_shape(self._sample_shape())
        except CaffeError as e:
            raise self.error(str(e)) from None
        self.output_labels = len(self.spec.top) > 1
        shapes = [(self.batch_size, c, h, w)]
        if self.output_labels:
            shapes.append((self.batch_size,))
        return shapes

    def _datum(self, item):
        key, value = item
        return decode_datum(value, where=f"{self.reader.path} key {key!r}")

    def _array(self, datum):
        t = self.transformer
        return datum_array(datum, t.force_color, t.force_gray)

    def _sample_shape(self):
        return self._array(self._datum(self.reader.peek())).shape

    def load_batch(self):
        c, h, w = self.transformer.output_shape(self._sample_shape())
        data = np.empty((self.batch_size, c, h, w), np.float32)
        label = np.empty(self.batch_size, np.float32)
        for i in range(self.batch_size):
            datum = self._datum(self.reader.next())
            sample = self._array(datum)
            if self.transformer.output_shape(sample.shape) != (c, h, w):
                raise CaffeError(f"record {i} of the batch is {sample.shape}, the batch's "
                                 f"first record is {(c, h, w)} (records of one batch must "
                                 "have one size)")
            data[i] = self.transformer(sample)
            label[i] = datum.get("label", 0)
        return (data, label) if self.output_labels else (data,)

    def close(self):
        super().close()
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.close()
            self.reader = None
