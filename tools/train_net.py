#!/usr/bin/env python3
"""Train a net like `caffe train`.

Runs deeplab_caffe.cli.train_net.main, as `python -m deeplab_caffe.cli.train_net` does.
"""
import sys

from deeplab_caffe.cli.train_net import main

if __name__ == "__main__":
    sys.exit(main())
