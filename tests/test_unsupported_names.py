"""Real BVLC Caffe layer types and fields that deeplab_caffe lacks are named as such; a typo
still gets a "did you mean"."""
import pytest

import deeplab_caffe as dc
from deeplab_caffe.errors import NetError, PrototxtError

INPUT = 'layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }\n'


@pytest.mark.parametrize("type_name", ["WindowData"])
def test_bvlc_layer_type_we_lack_says_so(type_name):
    with pytest.raises(NetError) as err:
        dc.Net(INPUT + f'layer {{ name: "p" type: "{type_name}" bottom: "x" top: "y" }}')
    text = str(err.value)
    assert (f"'{type_name}' is a BVLC Caffe layer type that deeplab_caffe does not implement"
            in text)
    assert "did you mean" not in text and "layer 'p'" in text


def test_v1_enum_of_a_type_we_lack_says_so():
    text = ('input: "x" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 3\n'
            'layers { name: "h" type: WINDOW_DATA top: "y" }')
    with pytest.raises(NetError, match="'WindowData' is a BVLC Caffe layer type that "
                                       "deeplab_caffe does not implement"):
        dc.Net(text)


def test_layer_type_typo_gets_a_suggestion():
    with pytest.raises(NetError, match=r"unknown layer type 'Convolutoin' \(did you mean "
                                       r"Convolution"):
        dc.Net(INPUT + 'layer { name: "p" type: "Convolutoin" bottom: "x" top: "y" }')


@pytest.mark.parametrize("field", ["window_data_param"])
def test_bvlc_field_we_lack_says_so(field):
    text = INPUT + f'layer {{ name: "p" type: "ReLU" bottom: "x" top: "y" {field} {{ }} }}'
    with pytest.raises(PrototxtError) as err:
        dc.Net(text)
    msg = str(err.value)
    assert (f"'{field}' is a BVLC Caffe field of LayerParameter that deeplab_caffe does not "
            "implement" in msg)
    assert "did you mean" not in msg and "(layer 'p')" in msg and "<string>:2:" in msg


def test_v1_field_we_lack_says_so():
    v1 = 'layers { name: "w" type: WINDOW_DATA top: "x" window_data_param { } }'
    with pytest.raises(PrototxtError, match="'window_data_param' is a BVLC Caffe field of "
                                            "V1LayerParameter that deeplab_caffe does not"):
        dc.Net(v1)


def test_field_typo_gets_a_suggestion():
    with pytest.raises(PrototxtError, match="unknown field 'convolution_parm'.*did you mean "
                                            "convolution_param"):
        dc.Net(INPUT + 'layer { name: "p" type: "ReLU" bottom: "x" top: "y" '
                       'convolution_parm { } }')
