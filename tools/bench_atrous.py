#!/usr/bin/env python3
"""Benchmark: our hole (atrous) convolution against cuDNN's dilated convolution.

Runs deeplab_caffe.bench.atrous.main, as `python -m deeplab_caffe.bench.atrous` does.
"""
import sys

from deeplab_caffe.bench.atrous import main

if __name__ == "__main__":
    sys.exit(main())
