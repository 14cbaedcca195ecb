"""Choose ChromaNet's decoding (regression/bins mix and softmax temperature) on held-out photos.

The network is run once per photo; each candidate decoding is then scored on the full
pipeline's output. The rule: among decodings whose colourfulness is at least `min_ratio` of the
truth's, take the one with the best PSNR; colour that is vivid but wrong loses, and so does
colour so timid it is nearly gray.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..merge import colorize_full_res
from ..inference import working_lightness, working_shape
from .evaluate import to_gray8
from .metrics import score, summarise

MIXES = (0.0, 0.25, 0.5, 0.75, 1.0)
TEMPERATURES = (0.38, 0.6, 1.0)


@dataclass(frozen=True)
class Choice:
    mix: float
    temperature: float
    psnr: float
    ciede2000: float
    colourfulness_ratio: float


def calibrate(model: torch.nn.Module, photos: list[tuple[Path, np.ndarray]], render_size: int, min_ratio: float = 0.75) -> tuple[Choice, list[Choice]]:
    cached = []
    with torch.inference_mode():
        for _, truth in photos:
            gray = to_gray8(truth)
            lightness = working_lightness(gray, working_shape(*gray.shape, render_size))
            h, w = lightness.shape
            x = torch.from_numpy(lightness)[None, None]
            ph, pw = (-h) % model.stride, (-w) % model.stride
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
            ab_reg, logits = model(x)
            cached.append((gray, truth, ab_reg, logits, (h, w)))
    results = []
    for mix in MIXES:
        for t in TEMPERATURES if mix > 0 else (1.0,):
            scores = []
            for gray, truth, ab_reg, logits, (h, w) in cached:
                ab = model.decode(ab_reg, logits, mix, t)
                ab = F.interpolate(ab, scale_factor=model.output_scale, mode="bilinear", align_corners=False)[0, :, :h, :w]
                pred = colorize_full_res(gray, ab.permute(1, 2, 0).numpy(), out_dtype=np.uint8)
                scores.append(score(pred, truth))
            s = summarise(scores)
            results.append(Choice(mix, t, s["psnr"], s["ciede2000"], s["colourfulness_ratio"]))
    ok = [c for c in results if c.colourfulness_ratio >= min_ratio]
    best = max(ok, key=lambda c: c.psnr) if ok else max(results, key=lambda c: c.colourfulness_ratio)
    return best, results
