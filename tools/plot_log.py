#!/usr/bin/env python3
"""Plot a training log (ours or Caffe's) against iterations into a PNG.

Runs deeplab_caffe.cli.plot_log.main, as `python -m deeplab_caffe.cli.plot_log` does.
"""
import sys

from deeplab_caffe.cli.plot_log import main

if __name__ == "__main__":
    sys.exit(main())
