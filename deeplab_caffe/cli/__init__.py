"""The command-line tools, one module per tool, each with ``main(argv=None) -> exit status``.

caffe is ``deeplab-caffe`` / ``python -m deeplab_caffe``, Caffe's own command line (train, test,
time, device_query), for DeepLab's scripts; it reuses train_net and time_net.

train_net (like ``caffe train``), test_net (DeepLab's test phase, with and without the dense CRF),
segment, time_net (like ``caffe time``), port_caffemodel, plot_log, plot_trimap, crf_grid_search
and demo; ``flags`` holds what they share (gflags-style flags, --gpu device choice, --define,
the CRF flags), so that a ``caffe``-style command with subcommands can reuse it.
``tools/<name>.py`` and ``python -m deeplab_caffe.cli.<name>`` run them.  Nothing is imported
here: ``import deeplab_caffe.cli.x`` loads only that tool.
"""
