#!/usr/bin/env python3
"""Cross-validate the dense CRF's bilateral kernel as the paper did.

Runs deeplab_caffe.cli.crf_grid_search.main, as `python -m deeplab_caffe.cli.crf_grid_search` does.
"""
import sys

from deeplab_caffe.cli.crf_grid_search import main

if __name__ == "__main__":
    sys.exit(main())
