"""The mean image of a Datum database -> a .binaryproto, like Caffe's tools/compute_image_mean.

    python tools/compute_image_mean.py [--backend lmdb|leveldb] INPUT_DB [OUTPUT_FILE]

The mean over every record of each value (pixels, float_data, or decoded encoded images), all
records of one size; written as a BlobProto with num 1, channels, height, width (what
transform_param.mean_file reads), and the per-channel means printed, as Caffe does.
"""
import argparse
import logging
import sys

import numpy as np

from ..data.datum import datum_array, decode_datum
from ..data.db import Reader
from ..errors import CaffeError
from ..io.blobs import blob_to_proto
from ..proto.schema import get_schema
from ..proto.wire_encode import encode
from .flags import gflags_argv

log = logging.getLogger("compute_image_mean")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input_db")
    ap.add_argument("output_file", nargs="?")
    ap.add_argument("--backend", default="lmdb", choices=("lmdb", "leveldb"))
    return ap.parse_args(gflags_argv(list(sys.argv[1:] if argv is None else argv)))


def image_mean(path, backend="LMDB"):
    """(1, C, H, W) float32 mean of the database's records (sums in float64)."""
    reader = Reader(path, backend)
    try:
        total, first, count = None, None, 0
        for _ in range(len(reader)):
            key, value = reader.next()
            values = datum_array(decode_datum(value, where=f"{path} key {key!r}"))
            if first is None:
                first = values.shape
                total = np.zeros(first, np.float64)
            elif values.shape != first:
                raise CaffeError(f"{path} key {key!r}: size {values.shape} differs from the "
                                 f"first record's {first}")
            total += values
            count += 1
    finally:
        reader.close()
    return (total / count).astype(np.float32)[None]


def write_binaryproto(path, array):
    with open(path, "wb") as f:
        f.write(encode(blob_to_proto(array, legacy=True), get_schema("bvlc"), "BlobProto"))


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        mean = image_mean(args.input_db, args.backend.upper())
        if args.output_file:
            log.info("Write to %s", args.output_file)
            write_binaryproto(args.output_file, mean)
    except CaffeError as e:
        print(f"compute_image_mean: {e}", file=sys.stderr)
        return 1
    for c, m in enumerate(mean[0].reshape(mean.shape[1], -1).mean(axis=1)):
        log.info("mean_value channel [%d]: %s", c, f"{m:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
