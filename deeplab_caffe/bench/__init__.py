"""The benchmarks: atrous (our hole convolution against cuDNN/PyTorch), crf (our dense CRF
against pydensecrf), net (DeepLab-LargeFOV, our Net and solver against torch.nn) and
caffemodel_read (a VGG-16-sized .caffemodel).  They measure and print; they are not part of
Caffe's command line, so they live apart from ``cli``.  ``tools/bench_<name>.py``, ``make bench``
and ``tools/gpu_check.sh`` run them.
"""
