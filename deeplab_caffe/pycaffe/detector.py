"""pycaffe's Detector: a TEST Net that classifies windows (ymin, xmin, ymax, xmax) of images,
with R-CNN's context padding."""
import numpy as np

from . import io as caffe_io
from .classifier import configured_transformer
from .net import TEST, Net


class Detector(Net):
    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None, context_pad=None):
        super().__init__(model_file, pretrained_file, TEST)
        self.transformer = configured_transformer(self, mean, input_scale, raw_scale,
                                                  channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """[(image filename, [window, ...]), ...] -> [{'window', 'prediction', 'filename'}]."""
        window_inputs = []
        for image_fname, windows in images_windows:
            image = caffe_io.load_image(image_fname).astype(np.float32)
            for window in windows:
                window_inputs.append(self.crop(image, window))
        in_ = self.inputs[0]
        caffe_in = np.zeros((len(window_inputs), window_inputs[0].shape[2])
                            + tuple(self.blobs[in_].data.shape[2:]), dtype=np.float32)
        for ix, window_in in enumerate(window_inputs):
            caffe_in[ix] = self.transformer.preprocess(in_, window_in)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        detections, ix = [], 0
        for image_fname, windows in images_windows:
            for window in windows:
                detections.append({"window": window, "prediction": predictions[ix],
                                   "filename": image_fname})
                ix += 1
        return detections

    def detect_selective_search(self, image_fnames):
        raise NotImplementedError("detect_selective_search needs the selective_search_ijcv "
                                  "package, which deeplab_caffe does not ship; compute windows "
                                  "and call detect_windows")

    def crop(self, im, window):
        """The window's pixels resized to the net input, with context padding (mean-filled
        outside the image) when context_pad is set."""
        crop = im[window[0]:window[2], window[1]:window[3]]
        if not self.context_pad:
            return caffe_io.resize_image(crop, self.crop_dims)
        box = np.array(window, dtype=np.float64)
        crop_size = self.blobs[self.inputs[0]].width
        scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
        half_h, half_w = (box[2] - box[0] + 1) / 2.0, (box[3] - box[1] + 1) / 2.0
        center = (box[0] + half_h, box[1] + half_w)
        scaled = np.array((-half_h, -half_w, half_h, half_w)) * scale
        box = np.round(np.tile(center, 2) + scaled)
        full_h, full_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        scale_h, scale_w = crop_size / full_h, crop_size / full_w
        pad_y = round(max(0, -box[0]) * scale_h)
        pad_x = round(max(0, -box[1]) * scale_w)
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0., [im_h, im_w, im_h, im_w])
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        crop_h, crop_w = round(clip_h * scale_h), round(clip_w * scale_w)
        if pad_y + crop_h > crop_size:
            crop_h = crop_size - pad_y
        if pad_x + crop_w > crop_size:
            crop_w = crop_size - pad_x
        context_crop = im[int(box[0]):int(box[2]), int(box[1]):int(box[3])]
        context_crop = caffe_io.resize_image(context_crop, (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context_crop
        return crop

    def configure_crop(self, context_pad):
        in_ = self.inputs[0]
        tpose = self.transformer.transpose[in_]
        inv_tpose = [tpose[t] for t in tpose]
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inv_tpose]
        self.context_pad = context_pad
        if self.context_pad:
            transpose = self.transformer.transpose.get(in_)
            channel_order = self.transformer.channel_swap.get(in_)
            raw_scale = self.transformer.raw_scale.get(in_)
            mean = self.transformer.mean.get(in_)
            if mean is not None:
                inv_transpose = [transpose[t] for t in transpose]
                crop_mean = mean.copy().transpose(inv_transpose)
                if channel_order is not None:
                    crop_mean = crop_mean[:, :, np.argsort(channel_order)]
                if raw_scale is not None:
                    crop_mean /= raw_scale
                self.crop_mean = crop_mean
            else:
                self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
