"""Images + a list file -> an LMDB / LevelDB of Datums, like Caffe's tools/convert_imageset.

    python tools/convert_imageset.py [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME

LISTFILE holds ``<path> <label>`` per line (split at the last space); images are read from
ROOTFOLDER + path.  Keys are ``%08d_<path>`` in list order (after --shuffle), so the database
reads back in that order.  Flags as Caffe's: --gray, --shuffle, --backend lmdb|leveldb,
--resize_width/--resize_height (OpenCV's INTER_LINEAR), --check_size, --encoded,
--encode_type (default: the file's extension).  Encoded datums hold the file's own bytes when
it needs no change (Caffe's ReadFileToDatum), else the image re-encoded by PIL (Caffe uses
OpenCV's imencode: the bytes differ, the pixels of PNG do not).  Unreadable images are skipped
with a warning, as in Caffe.
"""
import argparse
import io
import logging
import os
import sys

import numpy as np
from PIL import Image

from ..data.datum import datum_from_array, datum_from_encoded, encode_datum
from ..data.db import Writer
from ..data.image_seg_data import read_image_bgr
from ..errors import CaffeError
from ..layers.image_data import parse_image_list
from .flags import gflags_argv

log = logging.getLogger("convert_imageset")
PIL_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "tif": "TIFF",
               "tiff": "TIFF", "ppm": "PPM", "pgm": "PPM"}


BOOL_FLAGS = ("gray", "shuffle", "check_size", "encoded")
TRUE, FALSE = ("true", "t", "yes", "y", "1"), ("false", "f", "no", "n", "0")


def bool_flags(argv):
    """gflags' bool spellings (``--shuffle``, ``--shuffle=true``, ``--noshuffle``,
    ``--gray=0``) -> ``--flag`` or nothing; a bool flag never takes the next argument."""
    out = []
    for a in argv:
        name, eq, value = a.lstrip("-").partition("=")
        if a.startswith("--") and name in BOOL_FLAGS:
            if eq and value.lower() not in TRUE + FALSE:
                raise CaffeError(f"--{name}: not a bool: {value!r}")
            if not eq or value.lower() in TRUE:
                out.append(f"--{name}")
        elif a.startswith("--no") and a[4:] in BOOL_FLAGS:
            continue
        else:
            out.append(a)
    return out


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root_folder")
    ap.add_argument("list_file")
    ap.add_argument("db_name")
    ap.add_argument("--gray", action="store_true",
                    help="read images in grey")
    ap.add_argument("--shuffle", action="store_true",
                    help="shuffle the list first")
    ap.add_argument("--backend", default="lmdb", choices=("lmdb", "leveldb"))
    ap.add_argument("--resize_width", type=int, default=0)
    ap.add_argument("--resize_height", type=int, default=0)
    ap.add_argument("--check_size", action="store_true",
                    help="check that all the datums have the same size")
    ap.add_argument("--encoded", action="store_true",
                    help="store encoded images")
    ap.add_argument("--encode_type", default="", help="png, jpg, ... (default: the file's)")
    ap.add_argument("--seed", type=int, default=None, help="the --shuffle seed")
    return ap.parse_args(bool_flags(gflags_argv(list(sys.argv[1:] if argv is None else argv))))


def encode_image(hwc_bgr, encoding):
    fmt = PIL_FORMATS.get(encoding)
    if fmt is None:
        raise CaffeError(f"--encode_type '{encoding}': not one of {', '.join(PIL_FORMATS)}")
    img = hwc_bgr[:, :, 0] if hwc_bgr.shape[2] == 1 else hwc_bgr[:, :, ::-1]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format=fmt, **(
        {"quality": 95} if fmt == "JPEG" else {}))   # OpenCV's default JPEG quality
    return buf.getvalue()


def image_datum(path, label, args, encoding):
    """Caffe's ReadImageToDatum (None when the image cannot be read)."""
    size = (args.resize_height, args.resize_width) \
        if args.resize_height > 0 and args.resize_width > 0 else None
    try:
        img = read_image_bgr(path, not args.gray, size, where=path)
    except CaffeError as e:
        log.warning("Could not open or find file %s (%s)", path, e)
        return None
    if not encoding:
        return datum_from_array(np.ascontiguousarray(img.transpose(2, 0, 1)), label)
    same_ext = os.path.splitext(path)[1][1:].lower() in (encoding,) + (
        ("jpg", "jpeg") if encoding in ("jpg", "jpeg") else ())
    if (img.shape[2] == 3) == (not args.gray) and size is None and same_ext:
        with open(path, "rb") as f:
            return datum_from_encoded(f.read(), label)
    return datum_from_encoded(encode_image(img, encoding), label)


def convert(args):
    lines = [(p, lab) for p, lab, _ in parse_image_list(args.list_file)]
    if args.shuffle:
        np.random.default_rng(args.seed).shuffle(lines)
    log.info("A total of %d images.", len(lines))
    size = None
    count = 0
    with Writer(args.db_name, args.backend.upper()) as db:
        for line_id, (path, label) in enumerate(lines):
            encoding = args.encode_type.lower()
            if args.encoded and not encoding:
                encoding = os.path.splitext(path)[1][1:].lower()
            datum = image_datum(args.root_folder + path, label, args,
                                encoding if args.encoded else "")
            if datum is None:
                continue
            if args.check_size and not args.encoded:
                shape = tuple(datum.get(k) for k in ("channels", "height", "width"))
                if size is None:
                    size = shape
                elif shape != size:
                    raise CaffeError(f"{path}: size {shape} differs from the first image's "
                                     f"{size} (--check_size)")
            db.put(f"{line_id:08d}_{path}", encode_datum(datum))
            count += 1
            if count % 1000 == 0:
                log.info("Processed %d files.", count)
    log.info("Processed %d files.", count)
    return count


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args = parse_args(argv)
        convert(args)
    except CaffeError as e:
        print(f"convert_imageset: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
