"""Review measures: cheap numbers about a colorized result, and when they say "look at this one".

Computed on the review thumbnails (see :mod:`.thumbnails`), so they cost the same for every
scan size, and stored in the manifest record (``FileRecord.review``):

* ``colorfulness`` -- Hasler & Suesstrunk (2003), see :func:`colourfulness`. Their scale: ~15
  slightly, ~33 moderately, ~59 quite, >100 extremely colourful. A result near 0 means the
  network gave up (the output is still gray).
* ``flat_chroma`` -- 90th percentile of CIE C*ab in *large flat areas* of the original (skies,
  walls, paper margins), and ``flat_fraction``, the share of the frame those areas cover.
  Colourization typically fails there by splashing a blotch of strong colour where the scan has no
  texture to explain it; a percentile catches a blotch covering a tenth of the area, which a mean
  would dilute.

:func:`needs_look` turns the stored measures into a score and human reasons when the report is
written, so thresholds can be changed without re-running anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from colorize_cli.color import gray_to_lightness, rgb_to_lab

_FLAT_GRADIENT = 2.0  # L* change per thumbnail pixel below which a pixel counts as flat
_FLAT_RADIUS = 3  # ... and only if its whole 7x7 neighbourhood is flat too ("large" areas)
_FLAT_PERCENTILE = 90.0


def colourfulness(rgb: ArrayLike) -> float:
    """Colourfulness M of a 0-255 RGB image (Hasler & Suesstrunk, "Measuring colourfulness in
    natural images", Proc. SPIE 5007, 2003):

        rg = R - G,  yb = (R + G) / 2 - B,
        M = sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)

    with signed opponent channels and population standard deviations. A gray image scores 0;
    the paper rates about 33 "moderately", 59 "quite" and 82 "highly" colourful."""
    x = np.asarray(rgb, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"image must be an RGB image of shape (H, W, 3), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"image is empty: shape {x.shape}")
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = math.sqrt(float(rg.var() + yb.var()))
    centre = math.hypot(float(rg.mean()), float(yb.mean()))
    return spread + 0.3 * centre


def flat_chroma(gray: np.ndarray, rgb: np.ndarray) -> tuple[float, float]:
    """(90th percentile of C*ab over large flat areas of ``gray``, share of the frame they cover).

    ``gray`` (H, W) and ``rgb`` (H, W, 3) are 8-bit thumbnails of the same size. Flatness is
    judged on the original's L*, where the scan itself shows no texture that could explain colour.
    """
    lightness = gray_to_lightness(gray.astype(np.float32) / 255.0)
    dy, dx = np.gradient(lightness)
    flat = _erode(np.hypot(dx, dy) < _FLAT_GRADIENT, _FLAT_RADIUS)
    if not flat.any():
        return 0.0, 0.0
    lab = rgb_to_lab(rgb.astype(np.float32) / 255.0)
    chroma = np.hypot(lab[..., 1], lab[..., 2])[flat]
    return float(np.percentile(chroma, _FLAT_PERCENTILE)), float(flat.mean())


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose whole (2r+1)^2 window is set (edge-padded), via a summed-area table."""
    size = 2 * radius + 1
    padded = np.pad(mask, radius, mode="edge").astype(np.int32)
    table = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1), dtype=np.int32)
    table[1:, 1:] = padded.cumsum(0).cumsum(1)
    window = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    return window == size * size


@dataclass(frozen=True)
class ReviewThresholds:
    """When a result "needs a look". Defaults follow the Hasler-Suesstrunk scale."""

    gray_below: float = 8.0  # colourfulness below this: the output is nearly gray
    saturated_above: float = 90.0  # colourfulness above this: implausibly saturated for a photo
    flat_chroma_above: float = 35.0  # C*ab; a clear blue sky is about 25-30
    flat_min_fraction: float = 0.05  # flat areas smaller than this share of the frame are ignored


def needs_look(
    review: Mapping[str, Any] | None, thresholds: ReviewThresholds = ReviewThresholds()
) -> tuple[float, list[str]]:
    """(score, reasons) for one result; score 0 means nothing to flag, higher means look first.

    Each tripped rule adds 1 plus how far past its threshold the measure is (relative), so two
    problems outrank one and a grossly gray result outranks a borderline one. Missing or
    malformed measures (an old manifest, a hand edit) flag nothing rather than fail the report.
    """
    if not isinstance(review, Mapping):
        return 0.0, []
    t = thresholds
    score = 0.0
    reasons: list[str] = []
    m = finite(review.get("colorfulness"))
    if m is not None and m < t.gray_below:
        score += 1.0 + (t.gray_below - m) / t.gray_below
        reasons.append(f"nearly gray (colourfulness {m:.1f} < {t.gray_below:g})")
    if m is not None and m > t.saturated_above:
        score += 1.0 + (m - t.saturated_above) / t.saturated_above
        reasons.append(f"very saturated (colourfulness {m:.1f} > {t.saturated_above:g})")
    chroma = finite(review.get("flat_chroma"))
    fraction = finite(review.get("flat_fraction"))
    if (
        chroma is not None
        and fraction is not None
        and fraction >= t.flat_min_fraction
        and chroma > t.flat_chroma_above
    ):
        score += 1.0 + (chroma - t.flat_chroma_above) / t.flat_chroma_above
        reasons.append(
            f"strong colour in flat areas (C* {chroma:.0f} > {t.flat_chroma_above:g} "
            f"over {fraction:.0%} of the frame)"
        )
    return score, reasons


def finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
