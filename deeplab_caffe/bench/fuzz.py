"""Coverage-guided fuzzing (atheris, libFuzzer) of what reads untrusted files: the prototxt
tokenizer/parser (net and solver), the wire codec, and the .caffemodel / .solverstate readers.
Not a test: it runs for minutes, outside CI (tests/test_properties.py is the bounded in-suite
counterpart).  Anything but a CaffeError escaping a target is a finding: libFuzzer stops and
writes the input as crash-<sha1> in the working directory.

    python tools/fuzz.py TARGET [--seconds 300] [--corpus DIR] [-- libFuzzer flags]
    TARGET: prototxt | wire | caffemodel | solverstate

The wire target also checks a property: what decodes re-encodes to bytes that decode to the
same message.  Run through tools/fuzz.py, which imports deeplab_caffe under atheris's
instrumentation (coverage feedback needs it); `pip install atheris` first.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

from ..errors import CaffeError
from ..io import decode_net, write_caffemodel, write_solverstate
from ..io.solverstate import decode_solverstate
from ..proto import parse, parse_net, wire
from ..proto.schema import get_schema
from ..proto.upgrade import parse_net_text

BVLC = get_schema("bvlc")


def _text(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def fuzz_prototxt(data):
    text = _text(data)
    if text is None:
        return
    for run in (lambda: parse_net_text(text, "<fuzz>", {"X": "1"}),
                lambda: parse(text, "SolverParameter", "bvlc", "<fuzz>"),
                lambda: parse_net(text)):       # a text or, without newline, a file path
        try:
            run()
        except CaffeError:
            pass


def fuzz_wire(data):
    try:
        msg = wire.decode(data, BVLC, "NetParameter")
    except CaffeError:
        return
    try:
        again = wire.encode(msg, BVLC)
    except CaffeError:
        return      # decoded values the encoder refuses (e.g. an enum number without a name)
    back = wire.decode(again, BVLC, "NetParameter")
    if wire.encode(back, BVLC) != again:
        raise AssertionError("decode -> encode -> decode -> encode is not stable")


def fuzz_caffemodel(data):
    for schema in ("auto", "bvlc", "deeplab_v1"):
        try:
            decode_net(data, schema)
        except CaffeError:
            pass


def fuzz_solverstate(data):
    try:
        decode_solverstate(data)
    except CaffeError:
        pass


TARGETS = {"prototxt": fuzz_prototxt, "wire": fuzz_wire, "caffemodel": fuzz_caffemodel,
           "solverstate": fuzz_solverstate}


def seed_corpus(target, folder):
    """A few valid inputs to start from (the project's prototxts, small weight files)."""
    os.makedirs(folder, exist_ok=True)
    root = os.path.join(os.path.dirname(__file__), "..", "..", "prototxt")
    seeds = []
    if target == "prototxt":
        for dirpath, _, files in os.walk(root):
            seeds += [os.path.join(dirpath, f) for f in files if f.endswith(".prototxt")]
        for i, path in enumerate(sorted(seeds)[:40]):
            with open(path, "rb") as f, open(os.path.join(folder, f"seed{i}"), "wb") as g:
                g.write(f.read())
        return
    rng = np.random.default_rng(0)
    blobs = [rng.standard_normal((2, 3, 1, 1), np.float32), rng.standard_normal(2, np.float32)]
    if target == "solverstate":
        write_solverstate(os.path.join(folder, "seed0"), 3, "a.caffemodel", blobs, 1, fsync=False)
        write_solverstate(os.path.join(folder, "seed1"), 3, "a.caffemodel", blobs, 0, "v1",
                          fsync=False)
        return
    for i, (fmt, ltype) in enumerate([("v2", "Convolution"), ("v1", "Convolution"),
                                      ("v1", "Interp")]):
        write_caffemodel(os.path.join(folder, f"seed{i}"), [
            ("conv1", "Convolution", blobs), ("x", ltype, []), ("fc", "InnerProduct",
                                                               [blobs[0].reshape(2, 3)])],
            format=fmt, fsync=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", choices=sorted(TARGETS))
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--corpus", help="corpus folder (default: a new temporary one, seeded)")
    ap.add_argument("libfuzzer", nargs="*", help="extra libFuzzer flags, after --")
    args = ap.parse_args(argv)
    import atheris
    corpus = args.corpus or tempfile.mkdtemp(prefix=f"fuzz_{args.target}_")
    if not os.path.isdir(corpus) or not os.listdir(corpus):
        seed_corpus(args.target, corpus)
    flags = [sys.argv[0], corpus, f"-max_total_time={args.seconds}", "-print_final_stats=1",
             "-max_len=65536", "-rss_limit_mb=4096", "-timeout=20"] + args.libfuzzer
    print(f"fuzzing {args.target} for {args.seconds} s, corpus {corpus}", flush=True)
    atheris.Setup(flags, TARGETS[args.target])
    atheris.Fuzz()


if __name__ == "__main__":
    sys.exit(main())
