#!/usr/bin/env python3
"""Coverage-guided fuzzing of the parsers and decoders (atheris); see deeplab_caffe/bench/fuzz.py.

    python tools/fuzz.py prototxt|wire|caffemodel|solverstate [--seconds 300] [--corpus DIR]

deeplab_caffe is imported under atheris's instrumentation so the fuzzer sees its coverage.
"""
import sys

import atheris

with atheris.instrument_imports(include=["deeplab_caffe"], exclude=["deeplab_caffe._C"]):
    from deeplab_caffe.bench.fuzz import main

if __name__ == "__main__":
    sys.exit(main())
