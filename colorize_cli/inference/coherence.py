"""One colour story per scan: a tiled scan's chroma held, at low frequency, to a whole-scan thumbnail.

A scan too large for one network call is cut into tiles, and a network sees only its tile: a
bright sun in one tile makes that tile a sunset while its neighbour stays a blue noon, and the
blend can only fade the disagreement over the overlap. So the whole scan is also coloured once,
as a thumbnail small enough for one call, and each tiled a*b* map keeps only its own detail
(high frequencies) around the thumbnail's low frequencies:

    ab = thumb_lf + (tiled - lowpass(tiled)),    thumb_lf = lowpass(upsampled thumbnail a*b*)

A thumbnail at half a tile still sees a bright sun as a disc, and the model paints the sky warm
around it and cooler away from it: one story, but a band whose colour drifts (a spread of 20-40
a*b* units on our sun panoramas, untiled as much as tiled). So the thumbnail's own lowest
frequencies are kept within ``ICON_REACH`` of an icon's: the whole scan at ``ICON_SIDE`` px, where
a sun is a dot and a band one colour (`within`). Measured on 46 panoramas and 66 wide strips of
real photographs (README, "Wide scans").

This needs nothing of the model but ``predict_ab`` (third-party fully convolutional models too)
and one extra small network call per tiled scan. Where the tiles already agree with the whole
scan it changes nothing; where they disagree the thumbnail, which saw the whole scan, decides.

Also here: the measure of the problem (`band_block_chroma`, the chroma jump between neighbouring
column blocks inside a uniform band and the band's spread) and `synthetic_panorama`, wide gray
scans of smooth bands to measure it on (`python research/seams.py` prints the table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from colorize_cli.merge.upsample import DEFAULT_EPS, DEFAULT_RADIUS, fit_guided


def thumbnail_shape(h: int, w: int, long_side: int) -> tuple[int, int]:
    """The whole working image at ``long_side`` px on its long side (aspect kept, never larger):
    one network call sees the whole scan."""
    scale = min(1.0, long_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) or (h, w, C) float32 resized to ``shape`` (area average down, bilinear up)."""
    if image.shape[:2] == tuple(shape):
        return np.asarray(image, np.float32)
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    down = shape[0] <= image.shape[0] and shape[1] <= image.shape[1]
    y = F.interpolate(x, size=shape, mode="area") if down else F.interpolate(x, size=shape, mode="bilinear", align_corners=False)
    return (y[0, 0] if image.ndim == 2 else y[0].permute(1, 2, 0)).contiguous().numpy()


def _box(image: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Mean over a window of 2*radius+1 px along ``axis``, edges reflected (a running sum)."""
    if radius < 1:
        return image
    n = image.shape[axis]
    r = min(radius, n - 1)
    if r < 1:
        return np.repeat(image.mean(axis=axis, keepdims=True), n, axis=axis)
    pad = [(0, 0)] * image.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(image, pad, mode="symmetric"), axis=axis, dtype=np.float64)
    hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return ((hi - lo) / (2 * r + 1)).astype(np.float32)


def low_pass(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-like blur of an (h, w[, C]) map over its first two axes: three box passes per
    axis (their sum of variances is sigma**2), edges reflected. Cheap at any sigma."""
    out = np.asarray(image, np.float32)
    if sigma <= 0:
        return out.copy()
    radius = max(1, round((np.sqrt(4.0 * sigma**2 + 1.0) - 1.0) / 2.0))  # 3 boxes of 2r+1: var 3*((2r+1)^2-1)/12
    for axis in (0, 1):
        for _ in range(3):
            out = _box(out, radius, axis)
    return out


def upsample_guided(thumb_ab: np.ndarray, thumb_lightness: np.ndarray, lightness: np.ndarray) -> np.ndarray:
    """The thumbnail's a*b* (h', w', 2) brought to the working L*'s (h, w), its colour edges
    following the working L* (the merge's guided upsampling, one level down)."""
    if thumb_ab.shape[:2] == lightness.shape:
        return np.asarray(thumb_ab, np.float32)
    coeffs = fit_guided(thumb_ab, thumb_lightness, DEFAULT_RADIUS, DEFAULT_EPS)
    a = resize(coeffs.a, lightness.shape)
    b = resize(coeffs.b, lightness.shape)
    return a * np.asarray(lightness, np.float32)[..., None] + b


ICON_SIDE = 96  # px, long side of the whole-scan icon that anchors the thumbnail's lowest frequencies
ICON_REACH = 5.0  # a*b* units the thumbnail's low frequencies may stray from the icon's


def within(ab: np.ndarray, anchor: np.ndarray, reach: float) -> np.ndarray:
    """``ab`` (h, w, 2) moved towards ``anchor`` where it is farther than ``reach`` a*b* units
    from it (to exactly ``reach``, same direction); unchanged where it is nearer."""
    d = np.asarray(ab, np.float32) - anchor
    far = np.hypot(d[..., 0], d[..., 1])[..., None]
    return (anchor + d * np.minimum(1.0, reach / np.maximum(far, 1e-6))).astype(np.float32)


def anchor_to_icon(thumb_ab: np.ndarray, icon_ab: np.ndarray, sigma: float, reach: float = ICON_REACH) -> np.ndarray:
    """The thumbnail's a*b* with its content above ``sigma`` px (an icon pixel) kept `within`
    ``reach`` of the icon's; finer content untouched. Both already at working size."""
    lf = low_pass(thumb_ab, sigma)
    return within(lf, np.asarray(icon_ab, np.float32), reach) + (np.asarray(thumb_ab, np.float32) - lf)


def hold_to_thumbnail(tiled_ab: np.ndarray, thumb_ab: np.ndarray, sigma: float) -> np.ndarray:
    """Tiled a*b* (h, w, 2) whose content above ``sigma`` px is replaced by the whole-scan
    thumbnail's a*b* (already at (h, w), e.g. by `upsample_guided`): ``thumb + tiled - blur(tiled)``.

    Why: each tile chose its own colour story (a sunset beside a blue noon); the thumbnail saw the
    whole scan, so it decides the colour of every region wherever the tile edges fell. The tiles
    add only the detail finer than the thumbnail resolves (``sigma``: a thumbnail pixel)."""
    tiled_ab = np.asarray(tiled_ab, np.float32)
    if thumb_ab.shape != tiled_ab.shape:
        raise ValueError(f"thumbnail a*b* of shape {thumb_ab.shape} does not match the tiled {tiled_ab.shape}")
    return np.asarray(thumb_ab, np.float32) + (tiled_ab - low_pass(tiled_ab, sigma))


# --- measuring it -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """Rows [y0, y1) of a panorama that lie inside one smooth band, and its name."""

    name: str
    y0: int
    y1: int


@dataclass(frozen=True)
class BandChroma:
    """Per band: the largest a*b* distance between the means of neighbouring column blocks
    (``jump``) and the largest distance between any two block means (``spread``)."""

    name: str
    jump: float
    spread: float


def band_block_chroma(lab: np.ndarray, bands: list[Band], blocks: int, mask: np.ndarray | None = None) -> list[BandChroma]:
    """Cut each band's rows into ``blocks`` column blocks, take each block's mean (a*, b*) over
    the pixels ``mask`` keeps (all when None; a block with under a quarter of its pixels kept is
    left out, and neighbours across it are not compared), and report jumps and spreads."""
    h, w = lab.shape[:2]
    keep = np.ones((h, w), bool) if mask is None else mask
    edges = np.linspace(0, w, blocks + 1).round().astype(int)
    out = []
    for band in bands:
        means: list[np.ndarray | None] = []
        for x0, x1 in zip(edges[:-1], edges[1:]):
            k = keep[band.y0 : band.y1, x0:x1]
            if k.sum() < 0.25 * k.size:
                means.append(None)
                continue
            means.append(lab[band.y0 : band.y1, x0:x1, 1:3][k].mean(axis=0))
        jumps = [float(np.hypot(*(b - a))) for a, b in zip(means[:-1], means[1:]) if a is not None and b is not None]
        kept = np.array([m for m in means if m is not None])
        spread = float(max(np.hypot(*(p - q)) for p in kept for q in kept)) if len(kept) else 0.0
        out.append(BandChroma(band.name, max(jumps, default=0.0), spread))
    return out


@dataclass(frozen=True)
class Panorama:
    """A synthetic gray panorama, the rows inside each of its bands, and where the sun is not."""

    gray: np.ndarray  # (h, w) uint8 or uint16
    bands: list[Band]
    away_from_sun: np.ndarray  # (h, w) bool: pixels outside the sun disc and its halo


def synthetic_panorama(h: int, w: int, sun_x: float | None = None, bits: int = 8, seed: int = 0) -> Panorama:
    """Sky (a soft vertical gradient), two rolling hill bands and water, with film-like noise; a
    bright disc (the sun, radius 0.13 h) centred at ``sun_x`` (a fraction of the width) when
    given. Bands' boundaries wave by 3 % of h; the reported band rows stay clear of them."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    u = x / h  # horizontal position in heights, so hills look alike at any aspect

    def wave(base: float, phase: float) -> np.ndarray:
        return h * (base + 0.03 * np.sin(u * 1.3 + phase) * np.cos(u * 0.37 + 2 * phase))

    top1, top2, top3 = wave(0.42, 0.4), wave(0.58, 1.9), 0.75 * h
    img = 0.78 - 0.10 * (y / h)  # sky, lighter at the top
    img = np.where(y >= top1, 0.50 + 0.02 * np.sin(u * 0.8), img)  # far hills
    img = np.where(y >= top2, 0.33 + 0.02 * np.cos(u * 0.6), img)  # near hills
    img = np.where(y >= top3, 0.58 - 0.03 * ((y - top3) / h), img)  # water
    if sun_x is not None:
        r = np.hypot(x - sun_x * w, y - 0.22 * h)
        img = np.where(r < 0.13 * h, 0.97, img)
    img = img + rng.normal(0, 0.012, (h, w)).astype(np.float32)
    top = 255 if bits == 8 else 65535
    gray = np.clip(np.rint(img * top), 0, top).astype(np.uint8 if bits == 8 else np.uint16)
    m = int(np.ceil(0.03 * h)) + max(2, h // 40)
    bands = [
        Band("sky", max(1, h // 40), int(0.42 * h) - m),
        Band("far hills", int(0.42 * h) + m, int(0.58 * h) - m),
        Band("near hills", int(0.58 * h) + m, int(0.75 * h) - max(2, h // 40)),
        Band("water", int(0.75 * h) + max(2, h // 40), h - max(1, h // 40)),
    ]
    away = np.ones((h, w), bool) if sun_x is None else np.hypot(x - sun_x * w, y - 0.22 * h) >= 0.13 * h * 1.8
    return Panorama(gray, bands, away)
