#!/usr/bin/env python3
"""Plot a training log (ours or Caffe's) against iterations into a PNG.

    python tools/plot_log.py train.log [--out train.png] [--width 900]

Three panels: the loss (the smoothed ``Iteration N, loss = X`` and the train net's loss
outputs), the learning rate, and every test net output (accuracy, loss, ...).  Uses matplotlib
when it is installed, else draws with PIL (always available), so no new dependency.
"""
import argparse
import os
import sys

from ..log import read_log

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def panels(data):
    loss = {"loss (smoothed)": data["loss"]}
    loss.update({f"train {k}": v for k, v in data["train"].items() if "loss" in k})
    return [("loss", loss), ("learning rate", {"lr": data["lr"]}),
            ("test outputs", {k: v for k, v in data["test"].items()})]


def plot_matplotlib(data, out, width):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(3, 1, figsize=(width / 100, 9), sharex=True)
    for ax, (title, series) in zip(axes, panels(data)):
        for name, pts in series.items():
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name)
        ax.set_title(title)
        if any(series.values()):
            ax.legend(fontsize=8)
    axes[-1].set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(out)


def _nice(v):
    return f"{v:.3g}"


def plot_pil(data, out, width):
    from PIL import Image, ImageDraw
    height_each, margin = 260, (70, 20, 30, 30)      # left, right, top, bottom
    img = Image.new("RGB", (width, 3 * height_each), "white")
    d = ImageDraw.Draw(img)
    all_it = [p[0] for _, s in panels(data) for pts in s.values() for p in pts] or [0, 1]
    x0, x1 = min(all_it), max(max(all_it), min(all_it) + 1)
    for k, (title, series) in enumerate(panels(data)):
        top = k * height_each
        left, right = margin[0], width - margin[1]
        y_top, y_bot = top + margin[2], top + height_each - margin[3]
        d.rectangle([left, y_top, right, y_bot], outline=(0, 0, 0))
        d.text((left, top + 8), title, fill=(0, 0, 0))
        vals = [p[1] for pts in series.values() for p in pts if p[1] == p[1]]
        if not vals:
            d.text((left + 10, y_top + 10), "(no data)", fill=(128, 128, 128))
            continue
        lo, hi = min(vals), max(vals)
        if hi == lo:
            lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
        sx = lambda x: left + (x - x0) / (x1 - x0) * (right - left)  # noqa: E731
        sy = lambda y: y_bot - (y - lo) / (hi - lo) * (y_bot - y_top)  # noqa: E731
        for frac in (0, 0.5, 1):
            v = lo + frac * (hi - lo)
            d.text((4, sy(v) - 5), _nice(v), fill=(0, 0, 0))
            it = x0 + frac * (x1 - x0)
            d.text((sx(it) - 10, y_bot + 4), str(int(it)), fill=(0, 0, 0))
        for j, (name, pts) in enumerate(series.items()):
            colour = COLOURS[j % len(COLOURS)]
            xy = [(sx(i), sy(v)) for i, v in pts if v == v]
            if len(xy) > 1:
                d.line(xy, fill=colour, width=2)
            for x, y in xy if len(xy) < 50 else []:
                d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
            d.text((right - 160, y_top + 6 + 12 * j), name, fill=colour)
    img.save(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("log")
    p.add_argument("--out", help="PNG path (default: the log's name with .png)")
    p.add_argument("--width", type=int, default=900)
    p.add_argument("--backend", choices=("auto", "matplotlib", "pil"), default="auto")
    a = p.parse_args(argv)
    try:
        with open(a.log, encoding="utf-8", errors="replace") as f:
            data = read_log(f)
    except OSError as e:
        print(f"plot_log.py: error: {a.log}: {e.strerror}", file=sys.stderr)
        return 2
    if not data["loss"] and not data["test"]:
        print(f"plot_log.py: error: {a.log} has no 'Iteration N, loss' or test output lines",
              file=sys.stderr)
        return 2
    out = a.out or os.path.splitext(a.log)[0] + ".png"
    backend = a.backend
    if backend == "auto":
        try:
            import matplotlib  # noqa: F401
            backend = "matplotlib"
        except ImportError:
            backend = "pil"
    (plot_matplotlib if backend == "matplotlib" else plot_pil)(data, out, a.width)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
