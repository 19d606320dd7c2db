"""Fuzz: thousands of mutated prototxts; only PrototxtError may come out of parse_net."""
import random

import pytest

from deeplab_caffe.errors import PrototxtError
from deeplab_caffe.proto import parse_net

# A DeepLab-LargeFOV-like V1 net (DeepLab v1 syntax, templated), cut short to keep the fuzz fast.
DEEPLAB = '''# DeepLab-LargeFOV (fragment)
name: "${NET_ID}"
layers {
  name: "data"
  type: IMAGE_SEG_DATA
  top: "data" top: "label" top: "data_dim"
  image_data_param {
    root_folder: "${DATA_ROOT}"
    source: "${EXP}/list/${TRAIN_SET}.txt"
    label_type: PIXEL
    batch_size: 30 shuffle: true
  }
  transform_param { mean_value: 104.008 mean_value: 116.669 mean_value: 122.675
    crop_size: 321 mirror: true }
  include: { phase: TRAIN }
}
layers { bottom: "data" top: "conv1_1" name: "conv1_1" type: CONVOLUTION
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 64 pad: 1 kernel_size: 3 } }
layers { bottom: "conv1_1" top: "conv1_1" name: "relu1_1" type: RELU }
layers { bottom: "conv1_1" top: "pool1" name: "pool1" type: POOLING
  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layers { bottom: "pool1" top: "fc6" name: "fc6" type: CONVOLUTION strict_dim: false
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 1024 pad: 12 kernel_size: 3 hole: 12 } }
layers { bottom: "fc6" top: "fc6" name: "drop6" type: DROPOUT
  dropout_param { dropout_ratio: 0.5 } }
layers { bottom: "fc6" top: "fc8_${EXP}" name: "fc8_${EXP}" type: CONVOLUTION
  convolution_param { num_output: ${NUM_LABELS} kernel_size: 1
    weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0 } } }
layers { bottom: "label" top: "label_shrink" name: "label_shrink" type: INTERP
  interp_param { shrink_factor: 8 pad_beg: 0 pad_end: 0 } }
layers { bottom: "fc8_${EXP}" bottom: "label_shrink" name: "loss" type: SOFTMAX_LOSS
  softmaxloss_param { ignore_label: 255 } include: { phase: TRAIN } }
'''
V2 = '''name: "LeNet"
input: "data" input_shape { dim: 64 dim: 1 dim: 28 dim: 28 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 name: "b" }
  convolution_param { num_output: 20 kernel_size: 5 stride: 1 dilation: 2
    weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param < pool: MAX kernel_size: 2 stride: 2 round_mode: FLOOR > }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "pool1" bottom: "label"
  loss_param { ignore_label: -1 normalization: VALID } loss_weight: 1e0 }
'''
DEFINES = {"NET_ID": "largefov", "DATA_ROOT": "/data", "EXP": "voc12", "TRAIN_SET": "train_aug",
           "NUM_LABELS": 21}
TOKENS = ['{', '}', '<', '>', ':', ';', ',', '[', ']', '"', "'", '#', '\\', '\n', '${',
          '${EXP}', '${NOPE}', '$', '-', '0x', '1e999', '-1', '99999999999999999999', '.5f',
          'nan', 'inf', 'true', 'layers', 'layer', 'hole', 'hole_h', 'dilation', 'loss_param',
          'DECONVOLUTION', 'IMAGE_SEG_DATA', 'type:', 'name', 'input', 'input_dim: 3',
          '"\\x"', '"\\777"', '"a" "b"', '\x00', '\xe9', '\u2028', '\t', '{ }', 'param: "w"']


def mutate(text, rng):
    for _ in range(rng.randint(1, 3)):
        n = len(text)
        op = rng.randrange(7)
        i = rng.randrange(n + 1) if n else 0
        if op == 0 and n:                                   # delete a character
            text = text[:i] + text[i + 1:]
        elif op == 1 and n:                                 # duplicate a character
            text = text[:i] + text[i:i + 1] + text[i:]
        elif op == 2 and n > 1:                             # swap neighbours
            i = min(i, n - 2)
            text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
        elif op == 3:                                       # insert a token
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif op == 4:                                       # delete or duplicate a line
            lines = text.split("\n")
            j = rng.randrange(len(lines))
            lines[j:j + 1] = [] if rng.random() < 0.5 else [lines[j]] * 2
            text = "\n".join(lines)
        elif op == 5 and n:                                 # delete a span
            text = text[:i] + text[i + rng.randint(1, 40):]
        else:                                               # a random character
            text = text[:i] + chr(rng.choice([rng.randrange(32, 127), rng.randrange(0, 0x3000)])) \
                + text[i:]
    return text


@pytest.mark.parametrize("base,cases,seed", [(DEEPLAB, 1500, 1701), (V2, 1000, 1702)])
def test_only_prototxt_errors_escape(base, cases, seed):
    assert parse_net(base, defines=DEFINES).layers      # the unmutated text is valid
    rng = random.Random(seed)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(cases):
        text = mutate(base, rng)
        defines = DEFINES if rng.random() < 0.9 else None
        try:
            parse_net(text, defines=defines)
            outcomes["ok"] += 1
        except PrototxtError as e:
            assert e.line is None or e.line >= 1, text
            assert e.column is None or e.column >= 1, text
            outcomes["error"] += 1
        except Exception as e:  # noqa: BLE001  (the point of the test)
            raise AssertionError(f"{type(e).__name__}: {e}\n--- input ---\n{text}") from e
    # Both outcomes must occur, or the mutations are not exercising the parser.
    assert outcomes["ok"] > cases // 20 and outcomes["error"] > cases // 5, outcomes
