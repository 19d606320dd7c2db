#!/usr/bin/env python3
"""Port Caffe weights (.caffemodel <-> .pt, V1 <-> V2, VGG-16 -> DeepLab init).

Runs deeplab_caffe.cli.port_caffemodel.main, as `python -m deeplab_caffe.cli.port_caffemodel` does.
"""
import sys

from deeplab_caffe.cli.port_caffemodel import main

if __name__ == "__main__":
    sys.exit(main())
