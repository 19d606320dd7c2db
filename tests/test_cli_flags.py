"""The flags the command-line tools share (deeplab_caffe.cli.flags)."""
import argparse

import pytest
import torch

from deeplab_caffe.cli.flags import (add_crf_args, add_net_flags, crf_params, device_from_gpu,
                                     devices_from_gpu, gflags_argv, parse_defines, parse_widths)
from deeplab_caffe.errors import CaffeError


def test_gflags_one_dash():
    assert gflags_argv(["-solver=s.prototxt", "-gpu", "-1", "--log", "x", "-D", "A=1"]) == \
        ["--solver=s.prototxt", "--gpu", "-1", "--log", "x", "-D", "A=1"]


def test_defines():
    assert parse_defines(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    # Several in one flag; a comma not followed by KEY= stays in the value.
    assert parse_defines(["A=1,B=2", "LIST=a,b,c", "P=/x,y, Q=3"]) == \
        {"A": "1", "B": "2", "LIST": "a,b,c", "P": "/x,y", "Q": "3"}
    assert parse_defines(None) == {}
    for bad in ("NOVALUE", "=1", " =1"):
        with pytest.raises(CaffeError, match="--define expects KEY=VALUE"):
            parse_defines([bad])


def test_one_device():
    assert device_from_gpu(-1) == device_from_gpu(None) == device_from_gpu("-1") == "cpu"
    assert device_from_gpu("") == device_from_gpu(" ") == "cpu"      # --gpu= (empty GPU_ID)
    with pytest.raises(CaffeError, match="--gpu expects a GPU index"):
        device_from_gpu("cpu0")
    n = torch.cuda.device_count()
    with pytest.raises(CaffeError, match=f"--gpu {n}"):
        device_from_gpu(n)      # one past the last GPU (or any GPU without CUDA)


def test_training_devices():
    assert devices_from_gpu(None) == [None]
    assert devices_from_gpu("-1", 3) == ["cpu"] * 3
    assert devices_from_gpu(" -1", 0) == ["cpu"]
    assert devices_from_gpu("", 2) == ["cpu"] * 2                    # --gpu= (empty GPU_ID)
    with pytest.raises(CaffeError, match="bad --gpu 'x'"):
        devices_from_gpu("x")
    if not torch.cuda.is_available():
        with pytest.raises(CaffeError, match="no CUDA GPU"):
            devices_from_gpu("0,1")
        with pytest.raises(CaffeError, match="--gpu all"):
            devices_from_gpu("all")


def test_widths():
    assert parse_widths("1-4") == [1, 2, 3, 4]
    assert parse_widths("3,10") == [3, 10]
    with pytest.raises(CaffeError, match="--trimap expects A-B"):
        parse_widths("a-b")
    with pytest.raises(CaffeError, match="--widths widths must be >= 0"):
        parse_widths("5-2", "--widths")


def test_net_and_crf_flags():
    ap = argparse.ArgumentParser()
    add_net_flags(ap, "net prototxt")
    add_crf_args(ap)
    a = ap.parse_args(["--model", "m", "--define", "A=1", "--define", "B=2", "--bi-w", "5",
                       "--crf-iter", "3"])
    assert (a.model, a.weights, a.gpu, a.define) == ("m", None, -1, ["A=1", "B=2"])
    p = crf_params(a)
    # DeepLab-LargeFOV's published CRF where a flag is not given.
    assert p.as_dict() == dict(bi_w=5.0, bi_xy_std=121.0, bi_rgb_std=5.0, pos_w=3.0,
                               pos_xy_std=3.0, max_iter=3)
