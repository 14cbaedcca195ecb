"""Pure colour maths: sRGB <-> CIE Lab (D65), gray <-> L*, and the chroma merge.

All functions take and return float32 numpy arrays with channels last. Gray values and
RGB values are display-encoded sRGB in [0, 1]; L* is in [0, 100]; a*, b* are in Lab units.
A gray pixel g is read as the sRGB colour (g, g, g), so merging zero chroma onto its L*
gives back exactly (g, g, g).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from .upsample import DEFAULT_EPS, DEFAULT_RADIUS, AxisMap, axis_map, fit_guided

# sRGB (IEC 61966-2-1) primaries with the D65 white point.
RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=np.float64,
)
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
WHITE_D65 = RGB_TO_XYZ.sum(axis=1)  # XYZ of RGB (1, 1, 1), so white maps back to white exactly
LUMA = RGB_TO_XYZ[1]  # Y weights of linear R, G, B

_EPS = 216.0 / 24389.0
_KAPPA = 24389.0 / 27.0


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4).astype(
        np.float32
    )


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return np.where(
        x <= 0.0031308, x * 12.92, 1.055 * np.maximum(x, 0.0031308) ** (1.0 / 2.4) - 0.055
    ).astype(np.float32)


def _f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _EPS, np.cbrt(t), (_KAPPA * t + 16.0) / 116.0)


def _f_inv(t: np.ndarray) -> np.ndarray:
    return np.where(t**3 > _EPS, t**3, (116.0 * t - 16.0) / _KAPPA)


def luminance_to_lightness(y: np.ndarray) -> np.ndarray:
    """Relative luminance Y in [0, 1] -> L* in [0, 100]."""
    return (116.0 * _f(np.asarray(y, dtype=np.float32)) - 16.0).astype(np.float32)


def lightness_to_luminance(lightness: np.ndarray) -> np.ndarray:
    """L* in [0, 100] -> relative luminance Y in [0, 1]."""
    return _f_inv((np.asarray(lightness, dtype=np.float32) + 16.0) / 116.0).astype(np.float32)


def gray_to_lightness(gray: np.ndarray) -> np.ndarray:
    """Display-encoded gray in [0, 1] -> L* in [0, 100]."""
    return luminance_to_lightness(srgb_to_linear(gray))


def lightness_to_gray(lightness: np.ndarray) -> np.ndarray:
    """L* in [0, 100] -> display-encoded gray in [0, 1]."""
    return linear_to_srgb(lightness_to_luminance(lightness))


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1], shape (..., 3) -> CIE Lab (D65), shape (..., 3)."""
    xyz = srgb_to_linear(rgb) @ RGB_TO_XYZ.T.astype(np.float32)
    fx, fy, fz = (_f(xyz[..., i] / np.float32(WHITE_D65[i])) for i in range(3))
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1).astype(np.float32)


def lab_to_linear_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab -> linear sRGB, not clipped (out-of-gamut values fall outside [0, 1])."""
    lab = np.asarray(lab, dtype=np.float32)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0
    xyz = np.stack([_f_inv(t) * np.float32(w) for t, w in zip((fx, fy, fz), WHITE_D65)], axis=-1)
    return (xyz @ XYZ_TO_RGB.T.astype(np.float32)).astype(np.float32)


def fit_gamut_keep_luminance(linear_rgb: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pull each linear RGB colour straight toward the gray of the same luminance Y until it
    fits in [0, 1]. Y is linear in RGB, so the result keeps Y, and hence L*, exactly; only
    chroma is given up, which is what an out-of-gamut prediction should lose."""
    y3 = np.asarray(y, dtype=np.float32)[..., None]
    d = linear_rgb - y3
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(d > 0, (1.0 - y3) / d, np.where(d < 0, -y3 / d, np.inf))
    scale = np.clip(room.min(axis=-1, keepdims=True), 0.0, 1.0)
    return np.clip(y3 + scale * d, 0.0, 1.0).astype(np.float32)


def merge_chroma(lightness: np.ndarray, ab: np.ndarray, saturation: float = 1.0) -> np.ndarray:
    """Full-resolution L* (H, W) plus a*b* (H, W, 2) -> sRGB in [0, 1], shape (H, W, 3).

    The output's L* equals the input L* (up to float rounding): out-of-gamut chroma is
    reduced, never the lightness."""
    lightness = np.asarray(lightness, dtype=np.float32)
    lab = np.concatenate([lightness[..., None], np.asarray(ab, dtype=np.float32) * saturation], axis=-1)
    lin = fit_gamut_keep_luminance(lab_to_linear_rgb(lab), lightness_to_luminance(lightness))
    return linear_to_srgb(lin)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab -> sRGB in [0, 1], out-of-gamut colours mapped at constant L*."""
    lab = np.asarray(lab, dtype=np.float32)
    return merge_chroma(lab[..., 0], lab[..., 1:])


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] -> display-encoded gray of the same CIE luminance (sepia scans, toned prints)."""
    return linear_to_srgb(srgb_to_linear(rgb) @ LUMA.astype(np.float32))


# --- Fast full-resolution path ------------------------------------------------------------
#
# A scan is colorized by merging its own L* with the network's small a*b* map, brought up to
# full resolution. On a 6-megapixel scan the float path above costs seconds; this one works in
# strips of rows with float32 scratch buffers reused across strips, and exploits structure:
#   * the gray code value alone fixes L*, hence fy = (L* + 16) / 116 and the luminance Y:
#     both come from lookup tables, and saturation and the Lab scale factors are folded into
#     the small chroma maps, so full-resolution fx, fz are one multiply-add (or add) of fy;
#   * Y is known, so linear RGB = Y + d with d linear in X - Y*Xn and Z - Y*Zn: zero chroma
#     gives d = 0 exactly, and the luminance-keeping gamut fit only needs max(d) and min(d);
#   * linear -> sRGB code values is one table lookup per channel (2**16 or 2**20 bins),
#     patched so that the bin of every gray level's own Y holds exactly that gray level.

_FINV_KNEE = np.float32(6.0 / 29.0)  # f^-1 is t**3 above the knee, linear below it
_FINV_SLOPE = np.float32(3.0 * (6.0 / 29.0) ** 2)  # slope of the linear part (tangent at the knee)
_GAMUT_TINY = np.float32(1e-30)  # keeps max(d) > 0 > min(d) so the gamut ratios never divide by 0
_STRIP_PIXELS = 64_000  # default strip size: its scratch buffers stay in cache (6 MP: 126 ms at 100k px, 119 ms at 64k)


def _finv_inplace(t: np.ndarray, scratch_a: np.ndarray, scratch_b: np.ndarray) -> np.ndarray:
    """t <- f^-1(t) without np.where: m * (m**2 - slope) + slope * t with m = max(t, knee).

    Above the knee this is t**3; below it, knee**3 + slope * (t - knee), which is exactly the
    linear branch of the Lab definition (the line is the cube's tangent at the knee)."""
    m = np.maximum(t, _FINV_KNEE, out=scratch_a)
    cube = np.multiply(m, m, out=scratch_b)
    np.subtract(cube, _FINV_SLOPE, out=cube)
    np.multiply(cube, m, out=cube)
    np.multiply(t, _FINV_SLOPE, out=t)
    np.add(cube, t, out=t)
    return t


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@lru_cache(maxsize=4)
def gray_code_tables(levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(fy, Y) float32 tables for the code values of an integer gray image with ``levels`` levels.

    Y is computed from fy with the very arithmetic the fast path applies to fx and fz, so a
    pixel with zero chroma gets X - Y*Xn = 0 and Z - Y*Zn = 0 exactly."""
    gray = (np.arange(levels, dtype=np.float64) / (levels - 1)).astype(np.float32)
    fy = ((gray_to_lightness(gray) + np.float32(16.0)) / np.float32(116.0)).astype(np.float32)
    y = _finv_inplace(fy.copy(), np.empty_like(fy), np.empty_like(fy))
    return _readonly(fy), _readonly(y)


@lru_cache(maxsize=8)
def encode_table(in_levels: int, out_dtype_name: str) -> tuple[np.ndarray, np.float32]:
    """(table, scale): sRGB code value = table[int(linear * scale)] for the given output dtype.

    2**16 bins separate the luminances of all 256 gray levels; 2**20 bins those of all 65536
    (the darkest 16-bit levels are 1.2e-6 apart in linear light). The bin holding each input
    gray level's own Y is set to that level, so gray in gives exactly the same gray out."""
    out_dtype = np.dtype(out_dtype_name)
    out_max = np.iinfo(out_dtype).max
    bins = 2**16 if in_levels <= 256 and out_max <= 255 else 2**20
    scale = np.float32(bins - 1)
    centres = np.minimum((np.arange(bins, dtype=np.float64) + 0.5) / float(scale), 1.0).astype(np.float32)
    table = np.rint(linear_to_srgb(centres).astype(np.float64) * out_max).astype(out_dtype)
    _, y = gray_code_tables(in_levels)
    own_bin = (y * scale).astype(np.intp)  # the same float32 product the fast path truncates
    table[own_bin] = np.rint(np.arange(in_levels) * (out_max / (in_levels - 1))).astype(out_dtype)
    return _readonly(table), scale


@dataclass(frozen=True)
class _ChromaMaps:
    """Small maps giving full-resolution fx = ax * fy + bx and fz = az * fy + bz (a = None: 1)."""

    a: np.ndarray | None  # (h, w, 2) float32 or None
    b: np.ndarray  # (h, w, 2) float32


def _chroma_maps(
    gray: np.ndarray,
    ab_small: np.ndarray,
    saturation: float,
    upsample: str,
    lightness_small: np.ndarray | None,
    radius: int,
    eps: float,
) -> _ChromaMaps:
    """Fold saturation and the Lab scales (a*/500, -b*/200) into the small maps, once."""
    scale = np.array([saturation / 500.0, -saturation / 200.0])
    if upsample == "bilinear":
        return _ChromaMaps(None, (ab_small * scale).astype(np.float32))
    h, w = ab_small.shape[:2]
    if lightness_small is None:  # area average of the gray: cheap, and close to that of L*
        top = np.iinfo(gray.dtype).max
        small_gray = Image.fromarray(np.ascontiguousarray(gray)).resize((w, h), Image.Resampling.BOX)
        lightness_small = gray_to_lightness(np.asarray(small_gray, dtype=np.float32) / np.float32(top))
    coeffs = fit_guided(ab_small, lightness_small, radius, eps)
    # chroma = a * L* + b with L* = 116 fy - 16, so fx = (1 + s*116*a/500) fy + s*(b - 16 a)/500
    a = 1.0 + 116.0 * coeffs.a.astype(np.float64) * scale
    b = (coeffs.b.astype(np.float64) - 16.0 * coeffs.a) * scale
    return _ChromaMaps(a.astype(np.float32), b.astype(np.float32))


def _widened_strips(
    small: np.ndarray, W: int, H: int, rows: int
) -> Iterator[tuple[int, int, AxisMap, int, np.ndarray]]:
    """Yield (y0, y1, ym, first, wide) per output strip of ``rows`` rows of an (H, W) image.

    ``wide`` (C, k, W) holds small rows first..first+k-1, the ones feeding rows y0:y1, already
    resampled to width W; ``ym`` maps output rows to small rows for ``_vertical_rows``.

    Every small row is widened once and kept only while strips still need it."""
    planar = np.ascontiguousarray(small.transpose(2, 0, 1))  # (C, h, w)
    xm, ym = axis_map(planar.shape[2], W), axis_map(planar.shape[1], H)
    cache, cache_first, cache_end = planar[:, :0, :0], 0, 0
    for y0 in range(0, H, rows):
        y1 = min(y0 + rows, H)
        first, last = int(ym.lo[y0]), int(ym.hi[y1 - 1])
        if last >= cache_end:
            start = max(cache_end, first)
            seg = planar[:, start : last + 1]
            left = np.take(seg, xm.lo, axis=2)
            new = np.take(seg, xm.hi, axis=2)
            new -= left
            new *= xm.frac
            new += left
            if first < cache_end:  # keep the rows this strip shares with the last one
                new = np.concatenate([cache[:, first - cache_first :], new], axis=1)
            cache, cache_first, cache_end = new, first, last + 1
        yield y0, y1, ym, first, cache[:, first - cache_first : last + 1 - cache_first]


def _vertical_rows(wide: np.ndarray, first: int, ym: AxisMap, y0: int, y1: int, out: np.ndarray) -> np.ndarray:
    """Rows y0:y1 of the vertical bilinear pass from widened small rows (k, W) starting at ``first``.

    Output rows between two small-row centres share both source rows, so each such run is
    one broadcast multiply-add instead of gathering two full rows per output row."""
    lo, hi, frac = ym.lo, ym.hi, ym.frac
    r = y0
    while r < y1:
        i = lo[r]
        r_end = min(int(np.searchsorted(lo, i, side="right")), y1)
        top = wide[i - first]
        dst = out[r - y0 : r_end - y0]
        np.multiply(frac[r:r_end, None], wide[hi[r] - first] - top, out=dst)
        dst += top
        r = r_end
    return out


def colorize_full_res(
    gray: np.ndarray,
    ab_small: np.ndarray,
    saturation: float = 1.0,
    upsample: str = "guided",
    strip_rows: int | None = None,
    out_dtype: type | np.dtype | None = None,
    *,
    lightness_small: np.ndarray | None = None,
    radius: int = DEFAULT_RADIUS,
    eps: float = DEFAULT_EPS,
) -> np.ndarray:
    """Full-resolution gray scan (H, W) uint8/uint16 + small a*b* (h, w, 2) -> sRGB (H, W, 3).

    The output keeps the scan's L* (out-of-gamut chroma is reduced at constant luminance), and
    zero chroma gives back exactly (g, g, g). ``out_dtype`` is uint8, uint16 or float32 (sRGB
    in [0, 1]); None means the gray's dtype. Work is done in strips of ``strip_rows`` rows, so
    besides the output only a few strip-sized float32 buffers are held. For "guided" the
    guide at the map's size is the box-averaged gray unless ``lightness_small`` is given."""
    gray = np.asarray(gray)
    if gray.dtype.kind == "u" and gray.dtype.itemsize <= 2:
        gray = gray.astype(gray.dtype.newbyteorder("="), copy=False)  # big-endian TIFF data
    if gray.ndim != 2 or gray.dtype not in (np.uint8, np.uint16) or gray.size == 0:
        raise ValueError(f"expected a non-empty (H, W) uint8 or uint16 gray image, got {gray.dtype} {gray.shape}")
    ab_small = np.asarray(ab_small, dtype=np.float32)
    if ab_small.ndim != 3 or ab_small.shape[2] != 2 or ab_small.size == 0:
        raise ValueError(f"expected an (h, w, 2) a*b* map, got shape {ab_small.shape}")
    if not np.isfinite(ab_small).all():
        raise ValueError("the a*b* map contains NaN or infinite values")
    if not (np.isfinite(saturation) and saturation >= 0):
        raise ValueError(f"saturation must be a finite number >= 0, got {saturation}")
    if upsample not in ("guided", "bilinear"):
        raise ValueError(f"unknown chroma upsampling {upsample!r}: use 'guided' or 'bilinear'")
    if strip_rows is not None and strip_rows < 1:
        raise ValueError(f"strip_rows must be at least 1, got {strip_rows}")
    out_dt = gray.dtype if out_dtype is None else np.dtype(out_dtype)
    if out_dt not in (np.uint8, np.uint16, np.float32):
        raise ValueError(f"output dtype must be uint8, uint16 or float32, got {out_dt}")

    H, W = gray.shape
    h, w = ab_small.shape[:2]
    maps = _chroma_maps(gray, ab_small, saturation, upsample, lightness_small, radius, eps)
    small = maps.b if maps.a is None else np.concatenate([maps.a, maps.b], axis=2)
    n_maps = small.shape[2]

    fy_table, y_table = gray_code_tables(np.iinfo(gray.dtype).max + 1)
    if out_dt == np.float32:
        table, scale = None, np.float32(1.0)
    else:
        table, scale = encode_table(np.iinfo(gray.dtype).max + 1, out_dt.name)
    # d_c = S * (M[c,0] Xn (X/Xn - Y) + M[c,2] Zn (Z/Zn - Y)): linear RGB minus the gray of equal Y
    cx = (float(scale) * XYZ_TO_RGB[:, 0] * WHITE_D65[0]).astype(np.float32)
    cz = (float(scale) * XYZ_TO_RGB[:, 2] * WHITE_D65[2]).astype(np.float32)

    out = np.empty((H, W, 3), dtype=out_dt)
    rows = min(H, max(1, _STRIP_PIXELS // W) if strip_rows is None else strip_rows)
    buf = np.empty((9, rows, W), dtype=np.float32)
    idx = np.empty((rows, W), dtype=np.intp)
    code = np.empty((rows, W), dtype=out_dt)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for y0, y1, ym, first, wide in _widened_strips(small, W, H, rows):
            n = y1 - y0
            fy, yl, fx, fz, s1, s2, d0, d1, d2 = (b[:n] for b in buf)
            gi, cd = idx[:n], code[:n]

            np.copyto(gi, gray[y0:y1], casting="unsafe")
            np.take(fy_table, gi, out=fy, mode="clip")
            np.take(y_table, gi, out=yl, mode="clip")

            for ch, f in ((0, fx), (1, fz)):
                if maps.a is None:  # f = fy + b
                    _vertical_rows(wide[ch], first, ym, y0, y1, f)
                    f += fy
                else:  # f = a * fy + b
                    _vertical_rows(wide[ch], first, ym, y0, y1, s1)
                    s1 *= fy
                    _vertical_rows(wide[n_maps // 2 + ch], first, ym, y0, y1, f)
                    f += s1
                _finv_inplace(f, s1, s2)
                f -= yl  # now X/Xn - Y (fx) or Z/Zn - Y (fz)

            d = (d0, d1, d2)
            for c in range(3):
                np.multiply(fx, cx[c], out=d[c])
                np.multiply(fz, cz[c], out=s1)
                np.add(d[c], s1, out=d[c])

            # largest step toward the gray of equal Y that stays inside [0, S]: neg_s = -s
            dmax = np.maximum(d0, d1, out=fx)
            np.maximum(dmax, d2, out=dmax)
            np.maximum(dmax, _GAMUT_TINY, out=dmax)
            dmin = np.minimum(d0, d1, out=fz)
            np.minimum(dmin, d2, out=dmin)
            np.minimum(dmin, -_GAMUT_TINY, out=dmin)
            ys = np.multiply(yl, scale, out=yl)
            np.subtract(ys, scale, out=s1)
            neg_s = np.divide(s1, dmax, out=dmax)
            np.divide(ys, dmin, out=dmin)
            np.maximum(neg_s, dmin, out=neg_s)
            np.maximum(neg_s, np.float32(-1.0), out=neg_s)

            for c in range(3):
                lin = np.multiply(neg_s, d[c], out=d[c])
                np.subtract(ys, lin, out=lin)
                if table is None:
                    np.clip(lin, 0.0, 1.0, out=lin)
                    out[y0:y1, :, c] = linear_to_srgb(lin)
                else:
                    np.copyto(gi, lin, casting="unsafe")
                    np.take(table, gi, out=cd, mode="clip")
                    out[y0:y1, :, c] = cd
    return out
