#!/usr/bin/env python3
"""Test a DeepLab net on its list as DeepLab's test phase did, with and without the dense CRF.

Runs deeplab_caffe.cli.test_net.main, as `python -m deeplab_caffe.cli.test_net` does.
"""
import sys

from deeplab_caffe.cli.test_net import main

if __name__ == "__main__":
    sys.exit(main())
