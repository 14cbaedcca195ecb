"""Tile seams on wide scans: the chroma jump between neighbouring column blocks inside a smooth
band, and the band's spread (max - min of block means), tiled against untiled.

    python research/seams.py                 # the shipped model, the table for the README
    python research/seams.py --blocks 24     # finer column blocks
    python research/seams.py --random 14 --seed 123   # also 14 random panoramas (4:1-8:1, 2 in 3 with a sun)

Each panorama (`inference.coherence.synthetic_panorama`, plus the bundled example) is coloured
in-process by `inference.predict.colorize_gray`, the pipeline `colorize-dir` runs, three ways:
tiled without the thumbnail hold (the code before issue 40), tiled with it (the default), and
untiled (one tile as large as the working image). Pixels of the sun disc and its halo are left
out of the blocks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from colorize_cli.color import rgb_to_lab
from colorize_cli.inference.coherence import Band, band_block_chroma, synthetic_panorama
from colorize_cli.inference.colorizer import load_model
from colorize_cli.inference.predict import colorize_gray, working_shape
from colorize_cli.settings import ColorSettings

CASES = [  # (name, h, w, sun at this fraction of the width or None, bits)
    ("4.2:1", 300, 1260, None, 8),
    ("4.2:1 sun", 300, 1260, 0.3, 8),
    ("5:1 sun 16b", 360, 1800, 0.62, 16),
    ("6:1", 240, 1440, None, 8),
    ("6:1 sun", 240, 1440, 0.8, 8),
    ("8:1 16b", 250, 2000, None, 16),
    ("8:1 sun", 250, 2000, 0.45, 8),
    ("8:1 sun 16b", 500, 4000, 0.2, 16),
]


def example() -> tuple[np.ndarray, list[Band], np.ndarray]:
    """The README's first result, tests/data/panorama-16bit.png, its sky and water rows."""
    gray = np.asarray(Image.open("tests/data/panorama-16bit.png"))
    h, w = gray.shape
    y, x = np.mgrid[0:h, 0:w]
    away = np.hypot(x - 1200, y - 95) > 80 * 1.8
    return gray, [Band("sky", 4, 105), Band("water", 252, 296)], away


def measure(gray: np.ndarray, bands: list[Band], away: np.ndarray, model, color: ColorSettings, blocks: int, **kw) -> list:
    out = np.uint16 if gray.dtype == np.uint16 else np.uint8
    rgb = colorize_gray(gray, model.predictor, color, model.render_size, out_dtype=out, **kw)
    lab = rgb_to_lab(rgb.astype(np.float32) / np.iinfo(out).max)
    return band_block_chroma(lab, bands, blocks, away)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=16, help="column blocks per band")
    ap.add_argument("--random", type=int, default=0, help="also this many random panoramas")
    ap.add_argument("--seed", type=int, default=123, help="their seed")
    args = ap.parse_args()
    model = load_model(device="cpu")
    ways = {
        "tiled, before": (ColorSettings(), {"hold": False}),
        "tiled, held": (ColorSettings(), {}),
        "untiled": (ColorSettings(tile_size=8192), {}),
    }
    cases = [(name, *synthetic_panorama(h, w, sun, bits, seed=i).__dict__.values()) for i, (name, h, w, sun, bits) in enumerate(CASES)]
    cases.insert(0, ("example 5.3:1 sun 16b", *example()))
    rng = np.random.default_rng(args.seed)
    for i in range(args.random):
        ratio, h = rng.uniform(4, 8), int(rng.choice([240, 300, 360]))
        sun = float(rng.uniform(0.1, 0.9)) if i % 3 else None
        bits = 16 if i % 4 == 0 else 8
        cases.append((f"random {ratio:.1f}:1{' sun' if sun else ''}{' 16b' if bits == 16 else ''}",
                      *synthetic_panorama(h, int(h * ratio), sun, bits, seed=100 + i).__dict__.values()))
    print(f"{'scan':22} {'working':>9} | " + " | ".join(f"{k:^17}" for k in ways))
    print(f"{'':22} {'':>9} | " + " | ".join(f"{'jump':>8} {'spread':>8}" for _ in ways))
    worst = {k: [0.0, 0.0] for k in ways}
    failing = {k: 0 for k in ways}
    t0 = time.perf_counter()
    for name, gray, bands, away in cases:
        wh, ww = working_shape(*gray.shape, model.render_size)
        row = []
        for k, (color, kw) in ways.items():
            stats = measure(gray, bands, away, model, color, args.blocks, **kw)
            jump, spread = max(s.jump for s in stats), max(s.spread for s in stats)
            worst[k] = [max(worst[k][0], jump), max(worst[k][1], spread)]
            failing[k] += jump > 6 or spread > 16
            row.append(f"{jump:8.1f} {spread:8.1f}")
        print(f"{name:22} {f'{ww}x{wh}':>9} | " + " | ".join(row), flush=True)
    print(f"{'worst':22} {'':>9} | " + " | ".join(f"{j:8.1f} {s:8.1f}" for j, s in worst.values()))
    print(f"{'over a limit':22} {'':>9} | " + " | ".join(f"{f'{n} of {len(cases)}':>17}" for n in failing.values()))
    print(f"(a*b* units; limits: jump <= 6, spread <= 16; {args.blocks} blocks per band; {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
