"""DeepLab's public driver run_pascal_strong.sh (martinkersner/train-DeepLab, with its sub.sed),
read from ../shared/fixtures/deeplab_v1, run end to end on the CPU with only its settings lines
changed (CAFFE_BIN=deeplab-caffe, GPU_ID empty, every RUN_* on): train, test, train2, test2 on a
tiny net written in DeepLab v1 syntax over a synthetic VOC-style layout."""
import os
import re
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import loadmat

from deeplab_caffe import Net
from deeplab_caffe.data.synthetic import make_synthetic_voc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "..", "shared", "fixtures", "deeplab_v1", "train-DeepLab")
pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(DRIVER, "run_pascal_strong.sh")),
                                reason="no ../shared/fixtures/deeplab_v1/train-DeepLab")
NET_ID, NUM_LABELS, CROP = "DeepLab-LargeFOV", 4, 17

# DeepLab v1 syntax as in the released LargeFOV files: V1 `layers`, enum types, blobs_lr,
# hole, a loss without a top, ${...} placeholders for sub.sed.
BODY = """
layers { bottom: "data" top: "conv1" name: "conv1" type: CONVOLUTION
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 4 pad: 2 kernel_size: 3 hole: 2
    weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0 } } }
layers { bottom: "conv1" top: "conv1" name: "relu1" type: RELU }
layers { bottom: "conv1" top: "pool1" name: "pool1" type: POOLING
  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layers { bottom: "pool1" top: "fc8_${EXP}" name: "fc8_${EXP}" type: CONVOLUTION
  blobs_lr: 10 blobs_lr: 20 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: ${NUM_LABELS} kernel_size: 1
    weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0 } } }
"""
TRAIN = """name: "${NET_ID}"
layers { name: "data" type: IMAGE_SEG_DATA top: "data" top: "label"
  image_data_param { root_folder: "${DATA_ROOT}"
    source: "${EXP}/list${LIST_SUFFIX}/${TRAIN_SET}.txt" label_type: PIXEL batch_size: 2
    shuffle: true }
  transform_param { mean_value: 104.008 mean_value: 116.669 mean_value: 122.675
    crop_size: %d mirror: true }
  include: { phase: TRAIN } }
""" % CROP + BODY + """
layers { bottom: "label" top: "label_shrink" name: "label_shrink" type: INTERP
  interp_param { shrink_factor: 2 pad_beg: 0 pad_end: 0 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "fc8_${EXP}" bottom: "label_shrink"
  softmaxloss_param { ignore_label: 255 } include: { phase: TRAIN } }
layers { name: "accuracy" type: SEG_ACCURACY bottom: "fc8_${EXP}" bottom: "label_shrink"
  top: "accuracy" seg_accuracy_param { ignore_label: 255 } }
"""
TEST = """name: "${NET_ID}"
layers { name: "data" type: IMAGE_SEG_DATA top: "data" top: "label"
  image_data_param { root_folder: "${DATA_ROOT}"
    source: "${EXP}/list${LIST_SUFFIX}/${TEST_SET}.txt" batch_size: 1 has_label: false }
  transform_param { mean_value: 104.008 mean_value: 116.669 mean_value: 122.675
    crop_size: %d mirror: false }
  include: { phase: TEST } }
""" % CROP + BODY + """
layers { bottom: "fc8_${EXP}" top: "fc8_interp" name: "fc8_interp" type: INTERP
  interp_param { zoom_factor: 2 } }
layers { name: "fc8_mat" type: MAT_WRITE bottom: "fc8_interp"
  mat_write_param { prefix: "${FEATURE_DIR}/${TEST_SET}/fc8/"
    source: "${EXP}/list${LIST_SUFFIX}/${TEST_SET}_id.txt" strip: 0 period: 1 }
  include: { phase: TEST } }
"""
SOLVER = """train_net: "${EXP}/config/${NET_ID}/train_${TRAIN_SET}.prototxt"
lr_policy: "step"
gamma: 0.1
stepsize: 2
base_lr: 0.01
display: 1
max_iter: 2
momentum: 0.9
weight_decay: 0.0005
snapshot: 2
snapshot_prefix: "${EXP}/model/${NET_ID}/%s"
solver_mode: GPU
"""
SETTINGS = {"CAFFE_BIN": "deeplab-caffe", "GPU_ID": "", "RUN_TRAIN": "1", "RUN_TEST": "1",
            "RUN_TRAIN2": "1", "RUN_TEST2": "1"}


def driver_with_settings(text):
    """The script with only its settings lines changed (each must be found once)."""
    for key, value in SETTINGS.items():
        text, n = re.subn(rf"(?m)^{key}=.*$", f"{key}={value}", text)
        assert n == 1, f"settings line {key}= not found in run_pascal_strong.sh"
    return text


def voc_layout(work):
    """exper/voc12 as DeepLab lays it out: data/ (JPEGImages, SegmentationClassAug), the lists
    under list_subset/, the configs under config/<NET_ID>/."""
    exp = work / "exper" / "voc12"
    voc = make_synthetic_voc(str(exp / "data"), num_train=2, num_val=2, size=16,
                             num_classes=NUM_LABELS, seed=3)
    lists = exp / "list_subset"
    lists.mkdir(parents=True)
    read = {k: open(p).read() for k, p in voc.lists.items()}
    (lists / "train_aug.txt").write_text(read["train_aug"])
    (lists / "trainval_aug.txt").write_text(read["train_aug"] + read["val"])
    (lists / "val.txt").write_text(read["val"])
    (lists / "val_id.txt").write_text(read["val_id"])
    config = exp / "config" / NET_ID
    config.mkdir(parents=True)
    (config / "train.prototxt").write_text(TRAIN)
    (config / "test.prototxt").write_text(TEST)
    (config / "solver.prototxt").write_text(SOLVER % "train")
    (config / "solver2.prototxt").write_text(SOLVER % "train2")
    return exp, voc.ids["val"]


@pytest.fixture(scope="module")
def pascal_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("run_pascal")
    exp, val_ids = voc_layout(work)
    with open(os.path.join(DRIVER, "run_pascal_strong.sh")) as f:
        (work / "run_pascal_strong.sh").write_text(driver_with_settings(f.read()))
    shutil.copy(os.path.join(DRIVER, "sub.sed"), work / "sub.sed")
    # The console script as pip installs it: a `deeplab-caffe` on PATH running this checkout.
    bindir = work / "bin"
    bindir.mkdir()
    wrapper = bindir / "deeplab-caffe"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m deeplab_caffe "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    env.pop("GLOG_log_dir", None)
    proc = subprocess.run(["sh", "run_pascal_strong.sh"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    return work, exp, val_ids, proc


def test_all_four_phases_run(pascal_run):
    work, exp, val_ids, proc = pascal_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for phase in ("Training net", "Testing net", "Training2 net", "Testing2 net"):
        assert f"{phase} exper/voc12/{NET_ID}" in proc.stdout
    assert "Running deeplab-caffe train --solver=exper/voc12/config/DeepLab-LargeFOV/" \
           "solver_train_aug.prototxt --gpu=" in proc.stdout
    # Empty GPU_ID: the CPU, although the solver says solver_mode: GPU.
    assert "Use CPU." in proc.stderr
    assert "Batch 1, label = " in proc.stderr and "Loss: 0" in proc.stderr


def test_snapshots(pascal_run):
    work, exp, val_ids, proc = pascal_run
    model = exp / "model" / NET_ID
    names = sorted(p.name for p in model.iterdir() if p.suffix != ".rngstate")
    assert names == ["train2_iter_2.caffemodel", "train2_iter_2.solverstate",
                     "train_iter_2.caffemodel", "train_iter_2.solverstate"], names
    # train2 fine-tuned from train_iter_2 (--weights): its log says so.
    assert "Finetuning from exper/voc12/model/DeepLab-LargeFOV/train_iter_2.caffemodel" \
        in proc.stderr


def test_features_per_test_image(pascal_run, monkeypatch):
    work, exp, val_ids, proc = pascal_run
    for features in ("features", "features2"):
        fc8 = exp / features / NET_ID / "val" / "fc8"
        assert sorted(p.name for p in fc8.iterdir()) == \
            sorted(f"{i}_blob_0.mat" for i in val_ids)
        for i in val_ids:
            data = loadmat(fc8 / f"{i}_blob_0.mat")["data"]
            assert data.dtype == np.float32 and data.shape == (CROP, CROP, NUM_LABELS, 1)
    # test2's features are the scores of the train2 weights on each image, laid out [W, H, C, N].
    saved = {i: loadmat(exp / "features2" / NET_ID / "val" / "fc8" / f"{i}_blob_0.mat")["data"]
             for i in val_ids}
    monkeypatch.chdir(work)
    net = Net(f"exper/voc12/config/{NET_ID}/test_val.prototxt",
              weights=f"exper/voc12/model/{NET_ID}/train2_iter_2.caffemodel")
    for i in val_ids:
        net.forward()
        scores = net.blobs["fc8_interp"].detach().numpy()
        np.testing.assert_allclose(saved[i], scores.transpose(3, 2, 1, 0), rtol=1e-5, atol=1e-6)


def test_glog_files_in_log_dir(pascal_run):
    work, exp, val_ids, proc = pascal_run
    log_dir = exp / "log" / NET_ID
    info = sorted(p for p in log_dir.iterdir() if ".log.INFO." in p.name)
    assert len(info) == 4, sorted(p.name for p in log_dir.iterdir())    # one per phase
    assert all(re.fullmatch(r"deeplab-caffe\.[^.]+.*\.log\.INFO\.\d{8}-\d{6}\.\d+", p.name)
               for p in info)
    link = log_dir / "deeplab-caffe.INFO"
    assert link.is_symlink() and (log_dir / os.readlink(link)) in info
    text = "".join(p.read_text() for p in info)
    assert text.startswith("Log file created at: ")
    assert text.count("Iteration 2, loss = ") == 2 and text.count("Optimization Done.") >= 2
    assert text.count("Batch 0, label = ") == 2 * CROP * CROP
