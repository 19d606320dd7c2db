#!/usr/bin/env python3
"""Benchmark: DeepLab-LargeFOV, our Net/SGDSolver against torch.nn.

Runs deeplab_caffe.bench.net.main, as `python -m deeplab_caffe.bench.net` does.
"""
import sys

from deeplab_caffe.bench.net import main

if __name__ == "__main__":
    sys.exit(main())
