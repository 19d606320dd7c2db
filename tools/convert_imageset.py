#!/usr/bin/env python3
"""Caffe's tools/convert_imageset: see deeplab_caffe.cli.convert_imageset.

Runs deeplab_caffe.cli.convert_imageset.main, as `python -m deeplab_caffe.cli.convert_imageset`
does.
"""
import sys

from deeplab_caffe.cli.convert_imageset import main

if __name__ == "__main__":
    sys.exit(main())
