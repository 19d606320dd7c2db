#!/usr/bin/env python3
"""Per-layer forward and backward times of a net, like `caffe time`.

Runs deeplab_caffe.cli.time_net.main, as `python -m deeplab_caffe.cli.time_net` does.
"""
import sys

from deeplab_caffe.cli.time_net import main

if __name__ == "__main__":
    sys.exit(main())
