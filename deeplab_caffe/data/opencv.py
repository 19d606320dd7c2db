"""The two OpenCV uint8 operations DeepLab's ImageSegData relies on, reproduced bit for bit so
that no OpenCV install is needed: ``cv::resize(..., INTER_LINEAR)`` (io.cpp's
ReadImageToCVMat with new_height/new_width, for the image and the label alike) and
``cv::imread(..., IMREAD_GRAYSCALE)`` (is_color: false).

Resize: OpenCV's fixed-point bilinear (11-bit coefficients; a horizontal pass into int rows,
then the vertical pass as its SIMD kernel rounds it: ``((r0 >> 4) * b0 >> 16) + ((r1 >> 4) * b1
>> 16)``, then ``(v + 2) >> 2``), and its shortcut for an exact halving of both sides (the 2x2
mean, rounded).  Checked equal to cv2 4.10 on every pixel (tests/test_opencv_ops.py).
Grey: imread hands the work to the decoder: libjpeg's own luma channel for JPEG (PIL's draft
mode asks libjpeg for the same), libpng's rgb_to_gray (coefficients 0.299, 0.587 as 15-bit
integers, truncated) for PNG, and cvtColor's BGR2GRAY (14-bit, rounded) for anything else.
"""
import numpy as np

_COEF_BITS = 11
_COEF_ONE = 1 << _COEF_BITS


def _linear_taps(dst, src, clamp_weights):
    """(first index, second index, weight0, weight1) per output index, as OpenCV's resize sets
    them up: the source position in float32 from a double scale, 11-bit weights rounded to
    nearest even.  Columns outside the source take the edge pixel with weights (1, 0) (xofs /
    ialpha); rows keep their weights and have their indices clipped (the row fetch)."""
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        f[(s < 0) | (s >= src - 1)] = 0
        s = np.clip(s, 0, src - 1)
        s1 = np.minimum(s + 1, src - 1)
    else:
        s1 = np.clip(s + 1, 0, src - 1)
        s = np.clip(s, 0, src - 1)
    w1 = np.rint(f * np.float32(_COEF_ONE)).astype(np.int64)
    w0 = np.rint((np.float32(1) - f) * np.float32(_COEF_ONE)).astype(np.int64)
    return s, s1, w0, w1


def resize_linear(img, height, width):
    """``cv::resize(img, (width, height), INTER_LINEAR)`` of a uint8 (H, W) or (H, W, C) array."""
    img = np.asarray(img, np.uint8)
    grey = img.ndim == 2
    a = (img[:, :, None] if grey else img).astype(np.int64)
    H, W, C = a.shape
    if height <= 0 or width <= 0:
        raise ValueError(f"resize to {height}x{width}: sizes must be positive")
    if (H, W) == (height, width):
        return img.copy()
    if 2 * height == H and 2 * width == W:
        # OpenCV turns an exact halving into INTER_AREA's fast 2x2 mean.
        s = a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]
        out = (s + 2) >> 2
    else:
        x0, x1, a0, a1 = _linear_taps(width, W, clamp_weights=True)
        y0, y1, b0, b1 = _linear_taps(height, H, clamp_weights=False)
        rows = a[:, x0] * a0[None, :, None] + a[:, x1] * a1[None, :, None]
        top = (rows[y0] >> 4) * b0[:, None, None] >> 16
        bottom = (rows[y1] >> 4) * b1[:, None, None] >> 16
        out = (top + bottom + 2) >> 2
    out = np.clip(out, 0, 255).astype(np.uint8)
    return out[:, :, 0] if grey else out


def _libpng_grey(rgb):
    # png_set_rgb_to_gray(png, 1, 0.299, 0.587): coefficients * 32768 truncated, blue the rest.
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    red, green = 29900 * 32768 // 100000, 58700 * 32768 // 100000
    return ((red * r + green * g + (32768 - red - green) * b) >> 15).astype(np.uint8)


def _cvtcolor_grey(rgb):
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return ((r * 4899 + g * 9617 + b * 1868 + (1 << 13)) >> 14).astype(np.uint8)


def ask_decoder_for_grey(img):
    """Before ``img.load()``: have libjpeg output its luma channel, as OpenCV's JPEG decoder
    does for IMREAD_GRAYSCALE (other formats decode in colour and are converted after)."""
    if img.format == "JPEG":
        img.draft("L", img.size)


def grey_from_decoder(img):
    """(H, W) uint8: what ``cv::imread(path, IMREAD_GRAYSCALE)`` gives, from a PIL image opened
    and prepared by ``ask_decoder_for_grey`` before it was loaded."""
    if img.format == "JPEG" or img.mode in ("L", "LA", "I;16", "I"):
        return np.asarray(img.convert("L"), np.uint8)
    rgb = np.asarray(img.convert("RGB"), np.uint8)
    return _libpng_grey(rgb) if img.format == "PNG" else _cvtcolor_grey(rgb)
