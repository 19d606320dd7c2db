#!/usr/bin/env python3
"""Benchmark: read a VGG-16-sized .caffemodel.

Runs deeplab_caffe.bench.caffemodel_read.main
(the same as `python -m deeplab_caffe.bench.caffemodel_read`).
"""
import sys

from deeplab_caffe.bench.caffemodel_read import main

if __name__ == "__main__":
    sys.exit(main())
