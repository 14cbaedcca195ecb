"""Review measures: cheap numbers about a colorized result, and when they say "look at this one".

Computed on the review thumbnails (see :mod:`.thumbnails`), so they cost the same for every
scan size (some 30 ms at 256 px), and stored in the manifest record (``FileRecord.review``).
What goes wrong when old photographs are colorized, and the number that catches it:

* ``cast`` and ``cast_hue`` -- **an overall cast**, the sepia look: one tint laid over the whole
  frame, skies, faces and white cloth included. ``cast`` is the 10th percentile of every pixel's
  a*b* projected on the frame's mean a*b* direction: how much of the mean tint even the 90 % least
  tinted pixels carry (C*ab units). A colour photograph has pixels of other hues (a blue sky, a
  green field, neutral whites) and scores near 0 or below; a sepia-looking result scores 4 to 17.
  ``cast_hue`` is the mean's hue angle (degrees), as a warm cast (brown, 25-95 degrees) is the one
  that looks like a toned print rather than a colour photograph.
* ``blotch`` and ``blotch_area`` -- **blotches**: colour splashed where the scan has no texture to
  explain it (skies, walls, the flat background of a damaged print). ``blotch`` is the 98th
  percentile of C*ab over the low-texture (local L* deviation under 2.5 in 7x7 px), not dark
  (L* >= 35) part of the frame, counting only purple, magenta and pink hues (280-20 degrees): the
  colours the network splashes, and no sky, wall, paper or skin has. ``blotch_area`` is that
  part's share of the frame.
* ``seam`` -- **seams**: a chroma step along a tile border of a tiled scan (C*ab units across the
  border, over its flat rows, less the same measure's median over the frame); absent for a scan
  that was not tiled.
* ``chroma_p90`` -- **nearly gray**: the 90th percentile of C*ab (L* 10 to 95); under 8.5 the
  result looks black and white.
* ``colorfulness`` -- Hasler & Suesstrunk (2003), see :func:`colourfulness`. Their scale: ~15
  slightly, ~33 moderately, ~59 quite, >100 extremely colourful.
* ``flat_chroma`` and ``flat_fraction`` -- 90th percentile of C*ab in large flat areas of the
  original and their share of the frame (the first blotch measure; kept for the sheet's line of
  numbers and for manifests written before ``blotch`` existed).

The thresholds were set on 177 old photographs (``../shared/data/bw``) labelled by eye
(``tests/data/bw-review-labels.json``; ``tests/test_review_flags.py`` checks them).
:func:`needs_look` turns the stored measures into a score and human reasons when the report is
written, so thresholds can be changed without re-running anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from colorize_cli.color import gray_to_lightness, rgb_to_lab

_FLAT_GRADIENT = 2.0  # L* change per thumbnail pixel below which a pixel counts as flat
_FLAT_RADIUS = 3  # ... and only if its whole 7x7 neighbourhood is flat too ("large" areas)
_FLAT_PERCENTILE = 90.0

_TEXTURE_RADIUS = 3  # blotch: local standard deviation of L* over 7x7 px ...
_TEXTURE_BELOW = 2.5  # ... under this is "no texture"
_BLOTCH_MIN_L = 35.0  # dark areas (clothes, shadows) are left out: a dark purple coat is a coat
_BLOTCH_HUES = (280.0, 20.0)  # purple, magenta, pink: hue angles from 280 through 360 to 20
_BLOTCH_PERCENTILE = 98.0
_BLOTCH_MIN_AREA = 0.02  # less low-texture area than this share of the frame: nothing to judge
_CAST_L = (10.0, 95.0)  # black and white clip to neutral in any colouring: left out
_CAST_PERCENTILE = 10.0
_SEAM_BAND = 4  # px each side of a tile border whose mean a*b* are compared
_SEAM_MIN_ROWS = 0.25  # a border with fewer flat rows than this share is hidden by texture
_SEAM_FLAT_L = 5.0  # a row whose L* steps more than this across the border has an edge of its own


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
    return _flat_chroma(lightness, rgb_to_lab(rgb.astype(np.float32) / 255.0))


def _flat_chroma(lightness: np.ndarray, lab: np.ndarray) -> tuple[float, float]:
    dy, dx = np.gradient(lightness)
    flat = _erode(np.hypot(dx, dy) < _FLAT_GRADIENT, _FLAT_RADIUS)
    if not flat.any():
        return 0.0, 0.0
    chroma = np.hypot(lab[..., 1], lab[..., 2])[flat]
    return float(np.percentile(chroma, _FLAT_PERCENTILE)), float(flat.mean())


def _window_sum(values: np.ndarray, radius: int) -> np.ndarray:
    """Sum over each pixel's (2r+1)^2 window (edge-padded), via a summed-area table."""
    size = 2 * radius + 1
    padded = np.pad(values, radius, mode="edge").astype(np.float64)
    table = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1), dtype=np.float64)
    table[1:, 1:] = padded.cumsum(0).cumsum(1)
    return table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose whole (2r+1)^2 window is set (edge-padded)."""
    size = 2 * radius + 1
    return _window_sum(mask.astype(np.float64), radius) > size * size - 0.5


def local_deviation(lightness: np.ndarray, radius: int = _TEXTURE_RADIUS) -> np.ndarray:
    """Standard deviation of L* over each pixel's (2r+1)^2 window: the scan's texture there."""
    n = (2 * radius + 1) ** 2
    centred = lightness - float(lightness.mean())  # fewer digits lost in the sums
    mean = _window_sum(centred, radius) / n
    return np.sqrt(np.maximum(_window_sum(centred * centred, radius) / n - mean * mean, 0.0))


def chroma_p90(lab: np.ndarray) -> float:
    """90th percentile of C*ab over the pixels that are neither black nor white."""
    mid = _midtones(lab)
    return float(np.percentile(np.hypot(lab[..., 1], lab[..., 2])[mid], 90.0))


def _midtones(lab: np.ndarray) -> np.ndarray:
    lo, hi = _CAST_L
    mid = (lab[..., 0] >= lo) & (lab[..., 0] <= hi)
    return mid if mid.mean() >= 0.05 else np.ones(mid.shape, dtype=bool)


def overall_cast(lab: np.ndarray) -> tuple[float, float]:
    """(cast, hue): how much of the frame's mean tint (C*ab) the least tinted pixels still carry,
    as the 10th percentile of a*b* projected on the mean's direction, and the mean's hue angle in
    degrees [0, 360). A frame with no mean tint scores 0."""
    mid = _midtones(lab)
    a, b = lab[..., 1][mid].astype(np.float64), lab[..., 2][mid].astype(np.float64)
    ma, mb = float(a.mean()), float(b.mean())
    size = math.hypot(ma, mb)
    if size < 1e-6:
        return 0.0, 0.0
    along = (a * ma + b * mb) / size
    return float(np.percentile(along, _CAST_PERCENTILE)), math.degrees(math.atan2(mb, ma)) % 360.0


def blotch(lightness: np.ndarray, lab: np.ndarray) -> tuple[float, float]:
    """(blotch, area): 98th percentile of purple-to-pink C*ab over the low-texture, not dark part
    of the frame (0 for other hues), and that part's share of the frame. ``lightness`` is the
    original's L* (texture is judged on the scan, not on the result)."""
    region = (local_deviation(lightness) < _TEXTURE_BELOW) & (lightness >= _BLOTCH_MIN_L)
    area = float(region.mean())
    if area < _BLOTCH_MIN_AREA:
        return 0.0, area
    a, b = lab[..., 1][region], lab[..., 2][region]
    hue = np.degrees(np.arctan2(b, a)) % 360.0
    lo, hi = _BLOTCH_HUES
    off = (hue >= lo) | (hue < hi)
    return float(np.percentile(np.where(off, np.hypot(a, b), 0.0), _BLOTCH_PERCENTILE)), area


Border = tuple[float, float]  # (centre, half width of the blend), as fractions of the axis


def tile_borders(shape: tuple[int, int], tile_size: int, overlap: int) -> tuple[list[Border], list[Border]] | None:
    """Where the tiles of a working image of ``shape`` meet, as (columns, rows) of borders in
    fractions of the width and height; None when the image is one tile (as inference cuts it)."""
    from colorize_cli.inference.tiling import plan_tiles  # noqa: PLC0415 - numpy only, no torch

    h, w = shape
    if max(h, w) <= tile_size:
        return None
    tiles = plan_tiles(h, w, tile_size, overlap, stride=1)

    def borders(spans: set[tuple[int, int]], n: int) -> list[Border]:
        ordered = sorted(spans)
        return [((nxt[0] + prev[1]) / 2 / n, max(0.0, (prev[1] - nxt[0]) / 2 / n)) for prev, nxt in zip(ordered, ordered[1:])]

    cols = borders({(t.x0, t.x1) for t in tiles}, w)
    rows = borders({(t.y0, t.y1) for t in tiles}, h)
    return (cols, rows) if cols or rows else None


def seam_step(lightness: np.ndarray, lab: np.ndarray, columns: Sequence[Border], rows: Sequence[Border]) -> float:
    """The largest chroma step (C*ab) across a tile border, less the frame's ordinary steps.

    For a border at x, each row's mean a*b* over the 4 px just beyond the blend on the right minus
    that over the 4 px before it on the left, averaged over the rows where L* does not step there
    (|dL*| < 5: no edge of the scan explains a colour change); the same step at every other
    column gives the baseline (its median) that is subtracted. Rows likewise, transposed."""
    best = 0.0
    for borders, transpose in ((columns, False), (rows, True)):
        if not borders:
            continue
        light = lightness.T if transpose else lightness
        a = lab[..., 1].T if transpose else lab[..., 1]
        b = lab[..., 2].T if transpose else lab[..., 2]
        n = light.shape[1]
        for centre, half in borders:
            gap = max(2, int(round(half * n)))
            steps, valid = _steps(light, a, b, gap)
            if steps is None:
                continue
            at = int(round(centre * n)) - (gap + _SEAM_BAND)  # index into the steps of each column
            if not 0 <= at < steps.size or not valid[at]:
                continue
            best = max(best, float(steps[at] - np.median(steps[valid])) if valid.any() else 0.0)
    return best


def _steps(lightness: np.ndarray, a: np.ndarray, b: np.ndarray, gap: int) -> tuple[np.ndarray | None, np.ndarray]:
    """Mean a*b* step over the flat rows at every column x (bands [x-gap-4, x-gap) and
    [x+gap, x+gap+4)), and whether enough rows were flat there."""
    h, w = lightness.shape
    band = _SEAM_BAND
    xs = np.arange(gap + band, w - gap - band + 1)
    if xs.size == 0:
        return None, np.zeros(0, dtype=bool)

    def across(z: np.ndarray) -> np.ndarray:
        c = np.zeros((h, w + 1), dtype=np.float64)
        c[:, 1:] = np.cumsum(z, axis=1, dtype=np.float64)
        return (c[:, xs + gap + band] - c[:, xs + gap] - c[:, xs - gap] + c[:, xs - gap - band]) / band

    flat = np.abs(across(lightness)) < _SEAM_FLAT_L
    count = flat.sum(axis=0)
    da = np.where(flat, across(a), 0.0).sum(axis=0) / np.maximum(count, 1)
    db = np.where(flat, across(b), 0.0).sum(axis=0) / np.maximum(count, 1)
    return np.hypot(da, db), count >= _SEAM_MIN_ROWS * h


def review_measures(
    gray: np.ndarray, rgb: np.ndarray, tiles: tuple[Sequence[Border], Sequence[Border]] | None = None
) -> dict[str, float]:
    """Every measure of one result, from its 8-bit thumbnails ``gray`` (H, W) and ``rgb`` (H, W, 3)
    of the same size; ``tiles`` are the tile borders of a tiled scan (:func:`tile_borders`)."""
    lightness = gray_to_lightness(gray.astype(np.float32) / 255.0)
    lab = rgb_to_lab(rgb.astype(np.float32) / 255.0)
    flat, fraction = _flat_chroma(lightness, lab)
    cast, hue = overall_cast(lab)
    spot, area = blotch(lightness, lab)
    out = {
        "colorfulness": round(colourfulness(rgb), 2),
        "flat_chroma": round(flat, 2),
        "flat_fraction": round(fraction, 4),
        "chroma_p90": round(chroma_p90(lab), 2),
        "cast": round(cast, 2),
        "cast_hue": round(hue, 1),
        "blotch": round(spot, 2),
        "blotch_area": round(area, 4),
    }
    if tiles is not None:
        out["seam"] = round(seam_step(lightness, lab, *tiles), 2)
    return out


@dataclass(frozen=True)
class ReviewThresholds:
    """When a result "needs a look". Set on 177 labelled old photographs (see the module doc)."""

    gray_chroma_below: float = 8.5  # chroma_p90 below this: the output is nearly gray
    gray_below: float = 8.0  # colourfulness below this: nearly gray (manifests without chroma_p90)
    saturated_above: float = 90.0  # colourfulness above this: implausibly saturated for a photo
    cast_above: float = 4.0  # C*ab of tint that even the least tinted pixels carry ...
    cast_hues: tuple[float, float] = (25.0, 95.0)  # ... when the tint is warm (orange, brown, yellow)
    blotch_above: float = 4.0  # purple-to-pink C*ab where the scan has no texture
    seam_above: float = 5.0  # C*ab step across a tile border beyond the frame's ordinary steps
    flat_chroma_above: float = 35.0  # C*ab in large flat areas (manifests without blotch)
    flat_min_fraction: float = 0.05  # flat areas smaller than this share of the frame are ignored


@dataclass(frozen=True)
class Flag:
    """One reason to look at a result: a short kind (for a badge), its score and the sentence."""

    kind: str  # gray | vivid | cast | blotch | seam | flat
    score: float
    reason: str


def look_flags(review: Mapping[str, Any] | None, thresholds: ReviewThresholds = ReviewThresholds()) -> list[Flag]:
    """The flags one result's measures raise. Each tripped rule scores 1 plus how far past its
    threshold the measure is (relative), so two problems outrank one and a grossly gray result
    outranks a borderline one. Missing or malformed measures (an old manifest, a hand edit) flag
    nothing rather than fail the report."""
    if not isinstance(review, Mapping):
        return []
    t = thresholds
    flags: list[Flag] = []
    m = finite(review.get("colorfulness"))
    p90 = finite(review.get("chroma_p90"))
    if p90 is not None:
        if p90 < t.gray_chroma_below:
            flags.append(Flag("gray", 1.0 + (t.gray_chroma_below - p90) / t.gray_chroma_below,
                              f"nearly gray (C* {p90:.1f} < {t.gray_chroma_below:g} in 9 of 10 pixels)"))
    elif m is not None and m < t.gray_below:
        flags.append(Flag("gray", 1.0 + (t.gray_below - m) / t.gray_below,
                          f"nearly gray (colourfulness {m:.1f} < {t.gray_below:g})"))
    if m is not None and m > t.saturated_above:
        flags.append(Flag("vivid", 1.0 + (m - t.saturated_above) / t.saturated_above,
                          f"very saturated (colourfulness {m:.1f} > {t.saturated_above:g})"))
    cast, hue = finite(review.get("cast")), finite(review.get("cast_hue"))
    lo, hi = t.cast_hues
    if cast is not None and hue is not None and cast >= t.cast_above and lo <= hue <= hi:
        flags.append(Flag("cast", 1.0 + (cast - t.cast_above) / t.cast_above,
                          f"overall cast, the sepia look (every part of the frame tinted: C* {cast:.1f} "
                          f">= {t.cast_above:g} at hue {hue:.0f}\u00b0)"))
    spot = finite(review.get("blotch"))
    if spot is not None:
        if spot > t.blotch_above:
            flags.append(Flag("blotch", 1.0 + (spot - t.blotch_above) / t.blotch_above,
                              f"colour blotch where the scan is flat (purple to pink C* {spot:.0f} > {t.blotch_above:g})"))
    else:
        chroma, fraction = finite(review.get("flat_chroma")), finite(review.get("flat_fraction"))
        if chroma is not None and fraction is not None and fraction >= t.flat_min_fraction and chroma > t.flat_chroma_above:
            flags.append(Flag("flat", 1.0 + (chroma - t.flat_chroma_above) / t.flat_chroma_above,
                              f"strong colour in flat areas (C* {chroma:.0f} > {t.flat_chroma_above:g} "
                              f"over {fraction:.0%} of the frame)"))
    seam = finite(review.get("seam"))
    if seam is not None and seam > t.seam_above:
        flags.append(Flag("seam", 1.0 + (seam - t.seam_above) / t.seam_above,
                          f"seam along a tile border (chroma step {seam:.1f} > {t.seam_above:g})"))
    return flags


def needs_look(
    review: Mapping[str, Any] | None, thresholds: ReviewThresholds = ReviewThresholds()
) -> tuple[float, list[str]]:
    """(score, reasons) for one result; score 0 means nothing to flag, higher means look first."""
    flags = look_flags(review, thresholds)
    return sum(f.score for f in flags), [f.reason for f in flags]


def finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:  # a hand-edited 10**400 is an int no float holds: ignored like a NaN
        return float(value) if math.isfinite(value) else None
    except OverflowError:
        return None
