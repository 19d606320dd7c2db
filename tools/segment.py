#!/usr/bin/env python3
"""Segment images with a DeepLab net: VOC-palette label PNGs and side-by-side panels.

Runs deeplab_caffe.cli.segment.main, as `python -m deeplab_caffe.cli.segment` does.
"""
import sys

from deeplab_caffe.cli.segment import main

if __name__ == "__main__":
    sys.exit(main())
