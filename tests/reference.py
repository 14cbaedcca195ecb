"""Reference implementations the compiled merge is tested against: plain numpy, several float
copies of the image, written to be read rather than to be fast.

    upsample_bilinear    the network's a*b* map to full resolution, as torch's bilinear interpolate
    upsample_guided      the fast guided filter of upsample.py, applied in strips of rows
    reference_merge      upsampling + color.merge_chroma: what merge.colorize_full_res must give
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from colorize_cli.color import gray_to_lightness, merge_chroma
from colorize_cli.merge.upsample import DEFAULT_EPS, DEFAULT_RADIUS, GuidedCoefficients, _as_maps, axis_map, fit_guided


def _check_rows(H: int, W: int, y0: int, y1: int) -> None:
    if H < 1 or W < 1:
        raise ValueError(f"cannot upsample to {H}x{W} px")
    if not 0 <= y0 < y1 <= H:
        raise ValueError(f"rows {y0}:{y1} are not a non-empty range inside 0:{H}")


def widen(small: np.ndarray, W: int) -> np.ndarray:
    """Horizontal pass only: (h, w, C) -> (h, W, C). Cheap, because h is small."""
    small = _as_maps(small)
    xm = axis_map(small.shape[1], W)
    left = small[:, xm.lo]
    return left + (small[:, xm.hi] - left) * xm.frac[None, :, None]


def upsample_rows(small: np.ndarray, H: int, W: int, y0: int, y1: int) -> np.ndarray:
    """Rows y0:y1 of the bilinear upsampling of an (h, w, C) map to (H, W, C), as float32.

    Only the few small rows that feed the strip are widened, so the cost and memory are
    proportional to the strip, not the image."""
    small = _as_maps(small)
    _check_rows(H, W, y0, y1)
    ym = axis_map(small.shape[0], H)
    lo, hi, frac = ym.lo[y0:y1], ym.hi[y0:y1], ym.frac[y0:y1]
    first, last = int(lo[0]), int(hi[-1])
    wide = widen(small[first : last + 1], W)
    top = wide[lo - first]
    top += (wide[hi - first] - top) * frac[:, None, None]
    return top


def upsample_bilinear(ab_small: np.ndarray, H: int, W: int) -> np.ndarray:
    """(h, w, 2) -> (H, W, 2) float32, like torch's bilinear interpolate with align_corners=False."""
    return upsample_rows(ab_small, H, W, 0, H)


def downsample_area(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W) -> (h, w) float32 area average (Pillow's box filter), e.g. the guide at map size."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected an (H, W) image, got shape {image.shape}")
    if (h, w) == image.shape:
        return image.copy()
    small = Image.fromarray(image).resize((w, h), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32).copy()


def guided_rows(coeffs: GuidedCoefficients, lightness_rows: np.ndarray, H: int, y0: int) -> np.ndarray:
    """Rows y0:y0+len(lightness_rows) of the guided upsampling, given the full-res L* of those rows."""
    lightness_rows = np.asarray(lightness_rows, dtype=np.float32)
    if lightness_rows.ndim != 2:
        raise ValueError(f"expected (rows, W) lightness, got shape {lightness_rows.shape}")
    rows, W = lightness_rows.shape
    channels = coeffs.a.shape[2]
    ab = upsample_rows(np.concatenate([coeffs.a, coeffs.b], axis=2), H, W, y0, y0 + rows)
    out = ab[..., :channels] * lightness_rows[..., None]
    out += ab[..., channels:]
    return out


def upsample_guided(
    ab_small: np.ndarray,
    lightness_full: np.ndarray,
    radius: int = DEFAULT_RADIUS,
    eps: float = DEFAULT_EPS,
    lightness_small: np.ndarray | None = None,
    strip_rows: int = 512,
) -> np.ndarray:
    """(h, w, 2) a*b* guided by (H, W) L* -> (H, W, 2) float32 with colour edges following L*.

    ``lightness_small`` may be given when the caller already has L* at the map's size (the
    network's input brought to its output size); otherwise it is the area average of
    ``lightness_full``."""
    ab_small = _as_maps(ab_small)
    lightness_full = np.asarray(lightness_full, dtype=np.float32)
    if lightness_full.ndim != 2:
        raise ValueError(f"expected (H, W) lightness, got shape {lightness_full.shape}")
    H, W = lightness_full.shape
    h, w = ab_small.shape[:2]
    if lightness_small is None:
        lightness_small = downsample_area(lightness_full, h, w)
    coeffs = fit_guided(ab_small, lightness_small, radius, eps)
    out = np.empty((H, W, ab_small.shape[2]), dtype=np.float32)
    for y in range(0, H, strip_rows):
        y1 = min(y + strip_rows, H)
        out[y:y1] = guided_rows(coeffs, lightness_full[y:y1], H, y)
    return out


def reference_merge(gray: np.ndarray, ab_small: np.ndarray, saturation: float, upsample: str) -> np.ndarray:
    """sRGB in [0, 1] (H, W, 3) of a uint8/uint16 gray scan, by the float definitions, with the
    guide at the map's size the box-averaged gray (as colorize_full_res without lightness_small)."""
    top = np.float32(np.iinfo(gray.dtype).max)
    lightness = gray_to_lightness(gray.astype(np.float32) / top)
    H, W = gray.shape
    if upsample == "bilinear":
        ab = upsample_bilinear(ab_small, H, W)
    else:
        h, w = ab_small.shape[:2]
        small_gray = np.asarray(Image.fromarray(gray).resize((w, h), Image.Resampling.BOX), np.float32)
        ab = upsample_guided(ab_small, lightness, lightness_small=gray_to_lightness(small_gray / top))
    return merge_chroma(lightness, ab, saturation)
