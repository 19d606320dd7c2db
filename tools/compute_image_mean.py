#!/usr/bin/env python3
"""Caffe's tools/compute_image_mean: see deeplab_caffe.cli.compute_image_mean.

Runs deeplab_caffe.cli.compute_image_mean.main, as `python -m deeplab_caffe.cli.compute_image_mean`
does.
"""
import sys

from deeplab_caffe.cli.compute_image_mean import main

if __name__ == "__main__":
    sys.exit(main())
