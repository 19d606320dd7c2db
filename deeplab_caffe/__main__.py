"""``python -m deeplab_caffe <command> <args>``: the ``deeplab-caffe`` command line (Caffe's
``caffe``; see deeplab_caffe/cli/caffe.py)."""
import sys

from .cli.caffe import main

if __name__ == "__main__":
    sys.exit(main())
