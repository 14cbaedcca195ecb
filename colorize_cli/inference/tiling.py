"""Cut a working image into overlapping tiles and blend per-tile predictions back seamlessly.

A network sees at most ``tile`` px a side at once (memory), so larger working images are cut
into tiles that overlap by at least ``overlap`` px. Each tile's prediction is weighted by a
raised-cosine ramp over the sides it shares with a neighbour (never over the image border),
and the weighted average hides the seams: two tiles that disagree by a constant fade into
each other over the overlap instead of meeting at a step.

Planning is pure integer arithmetic; blending is numpy and accumulates in place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """A half-open box [y0, y1) x [x0, x1) in working-image pixels."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0


def _check_plan_args(h: int, w: int, tile: int, overlap: int, stride: int) -> None:
    if h < 1 or w < 1:
        raise ValueError(f"cannot tile an empty image ({h}x{w} px)")
    if tile < 1:
        raise ValueError(f"tile size must be at least 1 px, got {tile}")
    if overlap < 0:
        raise ValueError(f"tile overlap must not be negative, got {overlap}")
    if overlap >= tile:
        raise ValueError(f"tile overlap ({overlap} px) must be smaller than the tile size ({tile} px)")
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")


def _spans(n: int, tile: int, overlap: int, stride: int) -> list[tuple[int, int]]:
    """Evenly spread, equally sized spans covering [0, n) along one axis.

    All spans have one size: the smallest multiple of ``stride`` (capped by ``tile`` rounded
    down to the stride, when that still exceeds the overlap) that lets the fewest spans cover
    the axis with at least ``overlap`` px shared between neighbours. Equal sizes mean no tiny
    last tile and lets the caller batch tiles without padding."""
    if n <= tile:
        return [(0, n)]  # one span; the caller pads it to the stride if the network needs that
    largest = tile // stride * stride
    if largest <= overlap:  # the stride cannot be honoured inside this tile size
        largest, stride = tile, 1
    count = math.ceil((n - overlap) / (largest - overlap))
    size = math.ceil((n + (count - 1) * overlap) / count)
    size = min(-(-size // stride) * stride, largest)
    # size >= (n + (count-1)*overlap) / count, so steps of at most ceil((n-size)/(count-1))
    # leave every neighbouring pair sharing at least `overlap` px.
    starts = [round(i * (n - size) / (count - 1)) for i in range(count)]
    return [(s, s + size) for s in starts]


def plan_tiles(h: int, w: int, tile: int, overlap: int, stride: int = 1) -> list[Tile]:
    """Tiles of at most ``tile`` px a side covering an h x w image, row-major.

    Neighbours share at least ``overlap`` px. Where the image is larger than ``tile`` along an
    axis, tile sides are a multiple of ``stride``; a side that spans the whole (smaller) axis is
    the axis length, which the caller pads to the stride. Very wide or tall images give a
    single row or column of tiles."""
    _check_plan_args(h, w, tile, overlap, stride)
    rows = _spans(h, tile, overlap, stride)
    cols = _spans(w, tile, overlap, stride)
    return [Tile(y0, x0, y1, x1) for y0, y1 in rows for x0, x1 in cols]


def _ramp(length: int) -> np.ndarray:
    """Raised cosine rising from near 0 to near 1 over ``length`` px, sampled at pixel centres.

    Strictly positive, and a ramp plus its mirror image sums to exactly 1, so two tiles that
    overlap by exactly ``length`` px cross-fade without changing the total weight."""
    t = (np.arange(length, dtype=np.float64) + 0.5) / length
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def _profile(lo: int, hi: int, n: int, overlap: int) -> np.ndarray:
    """Weights along one axis of a span [lo, hi) of an axis of length n."""
    size = hi - lo
    prof = np.ones(size, dtype=np.float32)
    ramp_len = min(overlap, size)
    if ramp_len == 0:
        return prof
    ramp = _ramp(ramp_len)
    if lo > 0:  # a neighbour before this span
        prof[:ramp_len] *= ramp
    if hi < n:  # a neighbour after it
        prof[size - ramp_len :] *= ramp[::-1]
    return prof


def blend_weights(tile: Tile, h: int, w: int, overlap: int) -> np.ndarray:
    """(tile.height, tile.width) float32 weights: 1 inside, ramping down toward shared sides.

    Sides on the image border keep weight 1 up to the edge, so every pixel of the image gets
    a positive total weight from the tiles covering it."""
    if overlap < 0:
        raise ValueError(f"tile overlap must not be negative, got {overlap}")
    if not (0 <= tile.y0 < tile.y1 <= h and 0 <= tile.x0 < tile.x1 <= w):
        raise ValueError(f"tile {tile} does not lie inside the {h}x{w} image")
    wy = _profile(tile.y0, tile.y1, h, overlap)
    wx = _profile(tile.x0, tile.x1, w, overlap)
    return wy[:, None] * wx[None, :]


def extract(image: np.ndarray, tiles: Sequence[Tile]) -> list[np.ndarray]:
    """The tiles' pixels of an (h, w, ...) image, as views (no copies)."""
    h, w = image.shape[:2]
    for t in tiles:
        if not (0 <= t.y0 < t.y1 <= h and 0 <= t.x0 < t.x1 <= w):
            raise ValueError(f"tile {t} does not lie inside the {h}x{w} image")
    return [image[t.y0 : t.y1, t.x0 : t.x1] for t in tiles]


def blend(
    tiles: Sequence[Tile], predictions: Iterable[np.ndarray], h: int, w: int, overlap: int
) -> np.ndarray:
    """Weighted average of per-tile predictions, each (tile.height, tile.width, C), -> (h, w, C).

    ``predictions`` may be a generator: only the running sum, the weight sum and one tile's
    prediction are held at a time."""
    acc: np.ndarray | None = None
    wsum = np.zeros((h, w), dtype=np.float32)
    preds = iter(predictions)
    for i, t in enumerate(tiles):
        pred = next(preds, None)
        if pred is None:
            raise ValueError(f"got {i} predictions for {len(tiles)} tiles")
        pred = np.asarray(pred, dtype=np.float32)
        if pred.ndim != 3 or pred.shape[:2] != (t.height, t.width):
            raise ValueError(
                f"prediction of shape {pred.shape} does not fit tile {t} "
                f"(expected ({t.height}, {t.width}, C))"
            )
        if acc is None:
            acc = np.zeros((h, w, pred.shape[2]), dtype=np.float32)
        elif pred.shape[2] != acc.shape[2]:
            raise ValueError(f"predictions disagree on channels: {pred.shape[2]} vs {acc.shape[2]}")
        wt = blend_weights(t, h, w, overlap)
        region = acc[t.y0 : t.y1, t.x0 : t.x1]
        region += pred * wt[..., None]
        wsum[t.y0 : t.y1, t.x0 : t.x1] += wt
    if next(preds, None) is not None:
        raise ValueError(f"got more predictions than the {len(tiles)} tiles")
    if acc is None:
        raise ValueError("no tiles to blend")
    if not (wsum > 0).all():
        raise ValueError("the tiles do not cover the whole image")
    acc /= wsum[..., None]
    return acc
