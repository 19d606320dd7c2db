"""pycaffe's ``caffe.io``: arrays <-> BlobProto / Datum messages, image loading and resizing,
oversampling, and the Transformer that turns H x W x K images into net input."""
import numpy as np

from .proto import caffe_pb2


def blobproto_to_array(blob, return_diff=False):
    """The blob's data (or diff) as an array of its shape; the legacy num/channels/height/width
    when it has no ``shape``."""
    values = np.array(blob.diff if return_diff else blob.data, dtype=np.float32)
    if blob.HasField("num") or blob.HasField("channels") or blob.HasField("height") or \
            blob.HasField("width"):
        return values.reshape(blob.num, blob.channels, blob.height, blob.width)
    return values.reshape(tuple(blob.shape.dim))


def array_to_blobproto(arr, diff=None):
    """A BlobProto with the array's shape and data (and ``diff`` when given)."""
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(arr.shape)
    blob.data.extend(np.asarray(arr, np.float32).flat)
    if diff is not None:
        blob.diff.extend(np.asarray(diff, np.float32).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend([array_to_blobproto(arr) for arr in arraylist])
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(text):
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(text)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    """A Datum of a C x H x W array: uint8 arrays as bytes, others as float_data."""
    if arr.ndim != 3:
        raise ValueError(f"array_to_datum: the array must be C x H x W, got shape {arr.shape}")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum):
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    return np.array(datum.float_data).astype(float).reshape(shape)


def load_image(filename, color=True):
    """An H x W x 3 (or x 1) float image in [0, 1], as pycaffe's load_image returns."""
    from PIL import Image
    with Image.open(filename) as im:
        img = np.asarray(im.convert("RGB" if color else "L"), dtype=np.float32) / 255.0
    return img if img.ndim == 3 else img[:, :, np.newaxis]


def resize_image(im, new_dims, interp_order=1):
    """H x W x K image resized to new_dims (height, width); order 1: bilinear, 0: nearest."""
    from scipy.ndimage import zoom
    im = np.asarray(im, dtype=np.float32)
    if im.shape[0] == new_dims[0] and im.shape[1] == new_dims[1]:
        return im.copy()
    scale = (new_dims[0] / im.shape[0], new_dims[1] / im.shape[1]) + (1,) * (im.ndim - 2)
    return zoom(im, scale, order=interp_order, mode="nearest", grid_mode=True)


def oversample(images, crop_dims):
    """Ten crops per image: the four corners and the center, and their mirrors."""
    im_shape = np.array(images[0].shape)
    crop_dims = np.array(crop_dims)
    center = (im_shape[:2] / 2.0 - crop_dims / 2.0).astype(int)
    starts = [(0, 0), (0, im_shape[1] - crop_dims[1]), (im_shape[0] - crop_dims[0], 0),
              (im_shape[0] - crop_dims[0], im_shape[1] - crop_dims[1]), tuple(center)]
    crops = np.empty((10 * len(images), crop_dims[0], crop_dims[1], im_shape[-1]), np.float32)
    ix = 0
    for im in images:
        these = [im[y:y + crop_dims[0], x:x + crop_dims[1], :] for y, x in starts]
        for c in these + [c[:, ::-1, :] for c in these]:
            crops[ix] = c
            ix += 1
    return crops


class Transformer:
    """pycaffe's Transformer for the net's input blobs: ``preprocess`` resizes to the blob,
    transposes, swaps channels, scales raw values, subtracts the mean and scales the input;
    ``deprocess`` undoes it."""

    def __init__(self, inputs):
        self.inputs = inputs
        self.transpose, self.channel_swap, self.raw_scale = {}, {}, {}
        self.mean, self.input_scale = {}, {}

    def _check(self, name):
        if name not in self.inputs:
            raise Exception(f"{name} is not one of the net inputs: {list(self.inputs)}")

    def preprocess(self, in_, data):
        self._check(in_)
        caffe_in = np.asarray(data, dtype=np.float32)
        in_dims = self.inputs[in_][2:]
        if caffe_in.shape[:2] != tuple(in_dims):
            caffe_in = resize_image(caffe_in, in_dims)
        if in_ in self.transpose:
            caffe_in = caffe_in.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            caffe_in = caffe_in[self.channel_swap[in_], :, :]
        if in_ in self.raw_scale:
            caffe_in = caffe_in * self.raw_scale[in_]
        if in_ in self.mean:
            caffe_in = caffe_in - self.mean[in_]
        if in_ in self.input_scale:
            caffe_in = caffe_in * self.input_scale[in_]
        return caffe_in

    def deprocess(self, in_, data):
        self._check(in_)
        decaf_in = np.array(data, dtype=np.float32).squeeze()
        if in_ in self.input_scale:
            decaf_in = decaf_in / self.input_scale[in_]
        if in_ in self.mean:
            decaf_in = decaf_in + self.mean[in_]
        if in_ in self.raw_scale:
            decaf_in = decaf_in / self.raw_scale[in_]
        if in_ in self.channel_swap:
            decaf_in = decaf_in[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            decaf_in = decaf_in.transpose(np.argsort(self.transpose[in_]))
        return decaf_in

    def set_transpose(self, in_, order):
        self._check(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise Exception("Transpose order needs to have the same number of dimensions as "
                            "the input.")
        self.transpose[in_] = order

    def set_channel_swap(self, in_, order):
        self._check(in_)
        if len(order) != self.inputs[in_][1]:
            raise Exception("Channel swap needs to have the same number of dimensions as the "
                            "input channels.")
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_, scale):
        self._check(in_)
        self.raw_scale[in_] = scale

    def set_input_scale(self, in_, scale):
        self._check(in_)
        self.input_scale[in_] = scale

    def set_mean(self, in_, mean):
        """Mean per channel (1-d, K values) or per pixel (K x H x W)."""
        self._check(in_)
        ms = mean.shape
        if mean.ndim == 1:
            if ms[0] != self.inputs[in_][1]:
                raise ValueError("Mean channels incompatible with input.")
            mean = mean[:, np.newaxis, np.newaxis]
        elif len(ms) == 2:
            ms = (1,) + ms
            mean = mean.reshape(ms)
        if len(ms) == 3 and ms != tuple(self.inputs[in_][1:]):
            raise ValueError(f"Mean shape {ms} incompatible with input shape "
                             f"{tuple(self.inputs[in_][1:])}.")
        self.mean[in_] = mean
