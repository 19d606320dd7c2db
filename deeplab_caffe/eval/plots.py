"""Small plots drawn with PIL alone (no matplotlib needed): a line plot and a heat map."""
import math

import numpy as np
from PIL import Image, ImageDraw

from ..errors import CaffeError

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127)]
BLACK, GREY, WHITE = (0, 0, 0), (200, 200, 200), (255, 255, 255)


def _nice_ticks(lo, hi, count=6):
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw), default=raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 10))
    return ticks


def _fmt(v):
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.2e}"


def line_plot(series, path, title="", xlabel="", ylabel="", size=(640, 420)):
    """Write a PNG line plot.  series: {name: (xs, ys)}; NaN/None y values break the line."""
    if not series:
        raise CaffeError("line_plot needs at least one series")
    width, height = size
    left, right, top, bottom = 62, 150, 36, 48
    img = Image.new("RGB", size, WHITE)
    d = ImageDraw.Draw(img)
    xs_all = [float(x) for xs, _ in series.values() for x in xs]
    ys_all = [float(y) for _, ys in series.values() for y in ys
              if y is not None and math.isfinite(float(y))]
    if not xs_all:
        raise CaffeError("line_plot: the series are empty")
    xt = _nice_ticks(min(xs_all), max(xs_all))
    yt = _nice_ticks(min(ys_all) if ys_all else 0.0, max(ys_all) if ys_all else 1.0)
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]
    pw, ph = width - left - right, height - top - bottom

    def px(x, y):
        return (left + (x - x0) / (x1 - x0) * pw, top + ph - (y - y0) / (y1 - y0) * ph)
    for t in yt:
        _, yy = px(x0, t)
        d.line([(left, yy), (left + pw, yy)], fill=GREY)
        d.text((4, yy - 6), _fmt(t), fill=BLACK)
    for t in xt:
        xx, _ = px(t, y0)
        d.line([(xx, top + ph), (xx, top + ph + 4)], fill=BLACK)
        d.text((xx - 6, top + ph + 6), _fmt(t), fill=BLACK)
    d.rectangle([left, top, left + pw, top + ph], outline=BLACK)
    for k, (name, (xs, ys)) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        run = []
        for x, y in zip(xs, ys):
            if y is None or not math.isfinite(float(y)):
                if len(run) > 1:
                    d.line(run, fill=colour, width=2)
                run = []
                continue
            p = px(float(x), float(y))
            run.append(p)
            d.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=colour)
        if len(run) > 1:
            d.line(run, fill=colour, width=2)
        ly = top + 8 + 16 * k
        d.line([(left + pw + 10, ly + 6), (left + pw + 30, ly + 6)], fill=colour, width=3)
        d.text((left + pw + 34, ly), str(name), fill=BLACK)
    d.text((left + max(0, pw // 2 - 3 * len(title)), 4), title, fill=BLACK)
    d.text((left + pw // 2 - 3 * len(xlabel), height - 18), xlabel, fill=BLACK)
    d.text((4, top - 14), ylabel, fill=BLACK)
    img.save(path)
    return img


def _heat_colour(t):
    """t in [0, 1] -> RGB on a blue-to-yellow ramp; NaN -> grey."""
    if t != t:
        return GREY
    stops = [(0.0, (48, 18, 59)), (0.25, (40, 110, 220)), (0.5, (30, 190, 160)),
             (0.75, (170, 220, 50)), (1.0, (250, 240, 30))]
    for (a, ca), (b, cb) in zip(stops, stops[1:]):
        if t <= b:
            f = (t - a) / (b - a)
            return tuple(int(round(ca[i] + f * (cb[i] - ca[i]))) for i in range(3))
    return stops[-1][1]


def heatmap(panels, path, row_label="", col_label="", title="", cell=(34, 22)):
    """Write a PNG of one or more heat maps on a shared colour scale, best cell outlined.

    panels: list of (panel_title, rows, cols, values) with values (len(rows), len(cols)),
    NaN for missing cells."""
    if not panels:
        raise CaffeError("heatmap needs at least one panel")
    vals = np.concatenate([np.asarray(p[3], np.float64).ravel() for p in panels])
    finite = vals[np.isfinite(vals)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    best = finite.max() if finite.size else None
    cw, ch = cell
    margin_l, margin_t, gap = 48, 46, 24
    sizes = [(len(p[2]) * cw, len(p[1]) * ch) for p in panels]
    head = f"{title}   range {lo:.4g} .. {hi:.4g}"
    width = max(margin_l + sum(w for w, _ in sizes) + gap * len(panels) + 10,
                6 * len(head) + 10, 6 * (len(row_label) + len(col_label)) + 80)
    height = margin_t + max(h for _, h in sizes) + 40
    img = Image.new("RGB", (width, height), WHITE)
    d = ImageDraw.Draw(img)
    d.text((4, 4), head, fill=BLACK)
    x = margin_l
    for (ptitle, rows, cols, values), (w, h) in zip(panels, sizes):
        v = np.asarray(values, np.float64)
        if v.shape != (len(rows), len(cols)):
            raise CaffeError(f"heatmap panel {ptitle!r}: values {v.shape} do not match "
                             f"{len(rows)} rows x {len(cols)} cols")
        d.text((x, margin_t - 30), str(ptitle), fill=BLACK)
        for j, c in enumerate(cols):
            d.text((x + j * cw + 2, margin_t - 14), _fmt(float(c)), fill=BLACK)
        for i, r in enumerate(rows):
            if x == margin_l:
                d.text((4, margin_t + i * ch + 4), _fmt(float(r)), fill=BLACK)
            for j in range(len(cols)):
                t = (v[i, j] - lo) / (hi - lo) if hi > lo else 1.0
                box = [x + j * cw, margin_t + i * ch, x + (j + 1) * cw - 1,
                       margin_t + (i + 1) * ch - 1]
                d.rectangle(box, fill=_heat_colour(t if np.isfinite(v[i, j]) else float("nan")))
                if best is not None and v[i, j] == best:
                    d.rectangle(box, outline=(255, 0, 0), width=2)
        x += w + gap
    d.text((margin_l, height - 30), f"rows: {row_label}   cols: {col_label}", fill=BLACK)
    img.save(path)
    return img
