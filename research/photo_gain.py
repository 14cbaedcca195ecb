"""Measure a per-photo chroma gain against the calibrated constant one, on held-out photos.

The calibrated gain scales every photo's a*b* alike. A photo whose prediction is muted (the
network unsure of any colour, e.g. a portrait with a faint warm cast) then gets its cast
strengthened as much as a photo the network colours with confidence. Here the gain rises with
the photo's own predicted mean chroma instead (from `low` at or below chroma `c0` to `high` at or
above `c1`, linear between): more vivid where the model is sure, less where it is not.

The network runs once per photo (the calibrated weights with their gain set to 1); each
candidate is then the real merge (`colorize_full_res`, the candidate's gain as its saturation)
and the real scores. Candidates are chosen on CHOOSE by the rule of `colorize calibrate` (best
PSNR with colourfulness ratio >= --min-ratio, colourful photos' >= --min-vivid-ratio), the
constant gains and the per-photo ones separately; both choices are then scored on CHECK, paired
photo by photo.

    python research/photo_gain.py runs/lite2q-rule.safetensors runs/choose.txt runs/check.txt
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from colorize_cli.io.read.grayscale import luminance8
from colorize_cli.inference.predict import Predictor, predict_working_ab, working_lightness, working_shape
from colorize_cli.merge.full_res import colorize_full_res
from colorize_cli.models.weights import load_model
from colorize_cli.settings import ColorSettings
from colorize_cli.training.calibrate import VIVID_AT, meets_floors, vivid_ratio
from colorize_cli.training.evaluate import colourful_flags, load_truth, photos_in
from colorize_cli.training.metrics import paired_difference, score, summarise

CONSTANT = (1.0, 1.1, 1.2, 1.3, 1.4)
LOWS = (0.9, 1.0, 1.1)
HIGHS = (1.2, 1.3, 1.4, 1.5, 1.6)
EDGES = ((10, 25), (25, 75), (10, 50), (50, 90))  # (c0, c1) as percentiles of CHOOSE's mean chroma


def ramp(chroma: float, low: float, high: float, c0: float, c1: float) -> float:
    """The gain of a photo of mean predicted chroma ``chroma``: low up to c0, high from c1."""
    t = min(max((chroma - c0) / (c1 - c0), 0.0), 1.0)
    return low + (high - low) * t


def network(weights: Path) -> tuple[Predictor, int]:
    """The calibrated network with its gain set to 1 (each candidate brings its own), and its render size."""
    model, _ = load_model(weights)
    with torch.no_grad():
        model.gain.fill_(1.0)
    return Predictor(model.eval(), torch.device("cpu"), None), int(model.default_render_size)


@dataclass(frozen=True)
class _Photo:
    gray: np.ndarray
    truth: np.ndarray
    lightness: np.ndarray  # working L*, the guide of the merge
    ab: np.ndarray  # the network's a*b* at gain 1, at working size
    chroma: float  # its mean


class Photos:
    """Each photo of a list with the network's a*b* at gain 1, computed once."""

    def __init__(self, predictor: Predictor, render: int, listing: Path) -> None:
        loaded = load_truth(photos_in(listing))
        self.colourful = colourful_flags(loaded, VIVID_AT)
        self.items = []
        for _, truth in loaded:
            gray = luminance8(truth)
            lightness = working_lightness(gray, working_shape(*gray.shape, render))
            with torch.no_grad():
                ab = predict_working_ab(predictor, lightness, ColorSettings(render_size=render), 8)
            self.items.append(_Photo(gray, truth, lightness, ab, float(np.hypot(ab[..., 0], ab[..., 1]).mean())))

    def chromas(self) -> np.ndarray:
        return np.array([item.chroma for item in self.items])

    def scores(self, gain_of) -> tuple[dict, float, list]:
        """(summary, colourful photos' ratio, per-photo scores) with each photo's gain gain_of(chroma)."""
        per = [score(colorize_full_res(x.gray, x.ab, gain_of(x.chroma), lightness_small=x.lightness), x.truth) for x in self.items]
        return summarise(per), vivid_ratio(per, self.colourful), per


def candidates(edges: list[tuple[float, float]]):
    for g in CONSTANT:
        yield f"constant {g:.2f}", (lambda c, g=g: g)
    for low, high, (c0, c1) in itertools.product(LOWS, HIGHS, edges):
        yield f"ramp {low:.2f}->{high:.2f} over chroma {c0:.1f}..{c1:.1f}", (lambda c, a=(low, high, c0, c1): ramp(c, *a))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", type=Path, help="calibrated ChromaNet weights (mix and temperature are kept, the gain is the candidate's)")
    ap.add_argument("choose", type=Path)
    ap.add_argument("check", type=Path)
    ap.add_argument("--min-ratio", type=float, default=0.70)
    ap.add_argument("--min-vivid-ratio", type=float, default=0.68)
    a = ap.parse_args()
    predictor, render = network(a.weights)
    choose = Photos(predictor, render, a.choose)
    edges = [tuple(float(np.percentile(choose.chromas(), q)) for q in pair) for pair in EDGES]
    best: dict[str, tuple] = {}
    for name, gain_of in candidates(edges):
        s, vivid, _ = choose.scores(gain_of)
        ok = meets_floors(s["colourfulness_ratio"], vivid, a.min_ratio, a.min_vivid_ratio)
        print(f"{name:48s} PSNR {s['psnr']:.3f}  dE00 {s['ciede2000']:.3f}  ratio {s['colourfulness_ratio']:.3f}  "
              f"colourful {vivid:.3f}{'' if ok else '  (below a floor)'}", flush=True)
        kind = name.split()[0]
        if ok and (kind not in best or s["psnr"] > best[kind][0]):
            best[kind] = (s["psnr"], name, gain_of)
    check = Photos(predictor, render, a.check)
    rows = {}
    for kind in ("constant", "ramp"):
        _, name, gain_of = best[kind]
        s, vivid, per = check.scores(gain_of)
        rows[kind] = per
        print(f"CHECK {kind}: {name}: PSNR {s['psnr']:.3f}  dE00 {s['ciede2000']:.3f}  ratio {s['colourfulness_ratio']:.3f}  colourful {vivid:.3f}")
    for measure in ("psnr", "ciede2000"):
        d = paired_difference([getattr(x, measure) for x in rows["constant"]], [getattr(x, measure) for x in rows["ramp"]])
        print(f"CHECK ramp - constant, {measure}: {d.mean:+.3f} (95 % {d.low:+.3f} to {d.high:+.3f}), higher on {d.higher:.0%}")


if __name__ == "__main__":
    main()
