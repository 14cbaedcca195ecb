"""What holding a wide scan to one colour story costs on real content: wide strips cut from the
benchmark photographs (../shared/data/val, every second photo: a centred 6:1 strip, enlarged 3x so
that it is tiled at defaults), made gray, coloured by the pipeline `colorize-dir` runs, and scored
against their own colours (PSNR, CIEDE2000, colourfulness ratio; training.metrics).

    python research/wide_strips.py        # four ways, about a minute each on two cores

Ways: the raw blend of the tiles (before issue 40); held to the half-tile thumbnail alone; held to
the thumbnail whose lowest frequencies are anchored to the 96-px icon (the default); untiled.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from colorize_cli.inference import predict
from colorize_cli.inference.colorizer import load_model
from colorize_cli.io.read.grayscale import luminance8
from colorize_cli.settings import ColorSettings
from colorize_cli.training.metrics import score, summarise

VAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "val"


def strips() -> list[np.ndarray]:
    paths = sorted([*VAL.glob("*.jpg"), *VAL.glob("*.png")])[::2]
    out = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        w, h = im.size
        sh = max(8, w // 6)
        y0 = (h - sh) // 2
        out.append(np.asarray(im.crop((0, y0, w, y0 + sh)).resize((w * 3, sh * 3), Image.BICUBIC)))
    return out


def main() -> None:
    model = load_model(device="cpu")
    photos = strips()
    icon = predict.ICON_SIDE
    ways = {  # name: (settings, hold, icon side)
        "tiled, raw blend": (ColorSettings(), False, icon),
        "held to the thumbnail": (ColorSettings(), True, 1 << 30),
        "held, icon-anchored (default)": (ColorSettings(), True, icon),
        "untiled": (ColorSettings(tile_size=8192), True, icon),
    }
    print(f"{len(photos)} wide strips from {VAL}")
    for name, (color, hold, side) in ways.items():
        predict.ICON_SIDE = side
        t0 = time.perf_counter()
        s = summarise([score(predict.colorize_gray(luminance8(t), model.predictor, color, model.render_size, hold=hold), t) for t in photos])
        print(f"{name:32} PSNR {s['psnr']:.2f}  CIEDE2000 {s['ciede2000']:.2f}  colourfulness ratio {s['colourfulness_ratio']:.3f}"
              f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    predict.ICON_SIDE = icon


if __name__ == "__main__":
    main()
