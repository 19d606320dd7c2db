#!/usr/bin/env python3
"""The whole DeepLab pipeline in miniature, on a synthetic VOC-style set.

Runs deeplab_caffe.cli.demo.main, as `python -m deeplab_caffe.cli.demo` does.
"""
import sys

from deeplab_caffe.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
