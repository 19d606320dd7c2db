#!/usr/bin/env python3
"""Plot mean IoU (or pixel accuracy) against the trimap band width (Figure 5).

Runs deeplab_caffe.cli.plot_trimap.main, as `python -m deeplab_caffe.cli.plot_trimap` does.
"""
import sys

from deeplab_caffe.cli.plot_trimap import main

if __name__ == "__main__":
    sys.exit(main())
