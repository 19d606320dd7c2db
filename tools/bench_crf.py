#!/usr/bin/env python3
"""Benchmark: our dense CRF (CPU or CUDA) against pydensecrf.

Runs deeplab_caffe.bench.crf.main, as `python -m deeplab_caffe.bench.crf` does.
"""
import sys

from deeplab_caffe.bench.crf import main

if __name__ == "__main__":
    sys.exit(main())
