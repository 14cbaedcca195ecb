"""Where v1's yellow-brown lean comes from, and whether a cheap lever reduces it on both kinds of photo.

    python research/brown_cast.py                       # every variant, both sets
    python research/brown_cast.py --every 3             # a third of each set (quicker)

Two sets: the old black-and-white photographs (../shared/data/bw: mean a*, b* of the outputs and
the share leaning yellow-brown, mean b* > 2 with a* > -2) and colour photos with ground truth
(../shared/data/val, made gray then colorized: PSNR and CIEDE2000, as `colorize eval` scores).
The network runs once per photo (its raw heads are kept) and every variant decodes them again:
the decoding's mix and temperature (the model's buffers), and a neutral balance that subtracts
part of the mean a*b* of the low-chroma working pixels, per image. Pipeline otherwise as
`inference.colorize_gray` (defaults, render 256, guided upsampling, merge).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorize_cli.color import rgb_to_lab
from colorize_cli.inference.colorizer import load_model
from colorize_cli.inference.predict import Predictor, predict_working_ab, working_lightness, working_shape
from colorize_cli.io.read.grayscale import luminance8
from colorize_cli.merge.full_res import colorize_full_res
from colorize_cli.settings import ColorSettings
from colorize_cli.training.metrics import score, summarise


class Cached(torch.nn.Module):
    """The shipped model with its decoding set per variant; raw heads computed once per input."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.stride, self.output_scale, self.default_render_size = model.stride, model.output_scale, model.default_render_size
        self.mix, self.temperature, self.gain = float(model.mix), float(model.temperature), float(model.gain)
        self.raw: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        key = hashlib.sha1(lightness.contiguous().numpy().tobytes()).hexdigest() + str(tuple(lightness.shape))
        if key not in self.raw:
            self.raw[key] = self.model(lightness)
        return self.model.decode(*self.raw[key], self.mix, self.temperature, self.gain)


def neutral_balance(ab: np.ndarray, strength: float, low: float = 15.0) -> np.ndarray:
    """Subtract ``strength`` x the mean a*b* of the pixels whose chroma is below ``low``."""
    if strength == 0:
        return ab
    c = np.hypot(ab[..., 0], ab[..., 1])
    sel = ab[c < low] if (c < low).mean() > 0.05 else ab.reshape(-1, 2)
    return ab - strength * sel.mean(axis=0)


def colorize(gray: np.ndarray, predictor: Predictor, balance: float) -> np.ndarray:
    lightness = working_lightness(gray, working_shape(*gray.shape, 256))
    ab = neutral_balance(predict_working_ab(predictor, lightness, ColorSettings(), 8), balance)
    return colorize_full_res(gray, ab, 1.0, upsample="guided", out_dtype=np.uint8, lightness_small=lightness)


def photos(folder: Path, every: int) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[::every]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bw", type=Path, default=Path("../shared/data/bw"))
    ap.add_argument("--val", type=Path, default=Path("../shared/data/val"))
    ap.add_argument("--every", type=int, default=1)
    args = ap.parse_args()
    shipped = load_model(device="cpu")
    cached = Cached(shipped.model)
    predictor = Predictor(cached, torch.device("cpu"), None)
    bw = [luminance8(np.asarray(Image.open(p).convert("RGB"))) for p in photos(args.bw, args.every)]
    val = [np.asarray(Image.open(p).convert("RGB")) for p in photos(args.val, args.every)]
    variants = {  # name: (mix, temperature, neutral balance)
        "v1 as shipped (mix 1, T 0.6)": (1.0, 0.6, 0.0),
        "regression only (mix 0)": (0.0, 1.0, 0.0),
        "mix 0.5, T 0.6": (0.5, 0.6, 0.0),
        "mix 1, T 0.38": (1.0, 0.38, 0.0),
        "mix 1, T 1.0": (1.0, 1.0, 0.0),
        "shipped + balance 0.5": (1.0, 0.6, 0.5),
        "shipped + balance 1.0": (1.0, 0.6, 1.0),
    }
    print(f"{len(bw)} old photos, {len(val)} colour photos")
    print(f"{'variant':30} | {'bw mean a*':>10} {'b*':>6} {'lean':>9} | {'val PSNR':>8} {'CIEDE00':>8} {'colourf.':>8} | {'val b* bias':>11}")
    for name, (mix, t, bal) in variants.items():
        t0 = time.perf_counter()
        cached.mix, cached.temperature = mix, t
        means = []
        for gray in bw:
            lab = rgb_to_lab(colorize(gray, predictor, bal).astype(np.float32) / 255.0)
            means.append(lab[..., 1:].reshape(-1, 2).mean(axis=0))
        m = np.array(means)
        lean = int(((m[:, 1] > 2) & (m[:, 0] > -2)).sum())
        scores, bias = [], []
        for truth in val:
            pred = colorize(luminance8(truth), predictor, bal)
            scores.append(score(pred, truth))
            bias.append(rgb_to_lab(pred.astype(np.float32) / 255)[..., 2].mean() - rgb_to_lab(truth.astype(np.float32) / 255)[..., 2].mean())
        s = summarise(scores)
        print(f"{name:30} | {m[:, 0].mean():10.2f} {m[:, 1].mean():6.2f} {lean:4d}/{len(bw):<4d} | {s['psnr']:8.3f} {s['ciede2000']:8.3f} "
              f"{s['colourfulness_ratio']:8.3f} | {np.mean(bias):11.2f}   ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
