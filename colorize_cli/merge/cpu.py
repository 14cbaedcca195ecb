"""The merge's CPU kernel: one compiled pass over the pixels (numba), see `merge` for the maths.

The maps get their horizontal pass once per scan, at map height (`widen`, small). Then, row by
row, one loop looks the gray codes up in the fy and Y tables, one computes each pixel's colour in
registers (the vertical blend of the maps, Lab to linear RGB, the gamut fit at constant Y) and one
encodes it into the output: each output pixel is written once, and the only scratch is a few
row-sized buffers that stay in cache. Numpy needed dozens of passes over strip-sized buffers.

Compiled with ``cache=True`` (the first run on a machine compiles, later runs load it from the
user's cache folder, see `_cache_outside_the_package`) and ``nogil=True``, so the engine's writer threads run merges
side by side. Single-threaded on purpose: the engine already keeps every core busy with one
scan per writer, and a second pool of threads would only fight it.
"""

from __future__ import annotations

import os


def _cache_outside_the_package() -> None:
    """numba caches compiled code beside the module by default: inside site-packages, where
    `pip uninstall` leaves it behind, and the orphaned `colorize_cli/__pycache__` then shadows a
    later editable install. The user's cache folder instead, unless NUMBA_CACHE_DIR is set
    (it must be set before numba is first imported)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(base, "colorize-cli", "numba"))


_cache_outside_the_package()

import numba  # noqa: E402 - after the cache folder is chosen
import numpy as np  # noqa: E402

from colorize_cli.merge.inputs import FINV_KNEE, FINV_SLOPE, GAMUT_TINY, MergeInputs

_KNEE = FINV_KNEE
_SLOPE = FINV_SLOPE
_TINY = GAMUT_TINY
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _finv(t):
    m = max(t, _KNEE)
    return (m * m - _SLOPE) * m + t * _SLOPE


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _row_linear(g, wide, lo, hi, frac, fy_table, y_table, cx, cz, scale, fy, ys, lin):
    """lin[c, x] = linear RGB * scale of one output row, fitted into [0, scale] at constant Y.

    The table lookups have a loop of their own, so the arithmetic loop reads only contiguous
    rows and the compiler vectorises it (gathers inside it make it several times slower)."""
    W = g.shape[0]
    for x in range(W):
        fy[x] = fy_table[g[x]]
        ys[x] = y_table[g[x]] * scale
    for x in range(W):
        f = fy[x]
        t = wide[0, lo, x]
        ax = t + frac * (wide[0, hi, x] - t)
        t = wide[1, lo, x]
        az = t + frac * (wide[1, hi, x] - t)
        t = wide[2, lo, x]
        bx = t + frac * (wide[2, hi, x] - t)
        t = wide[3, lo, x]
        bz = t + frac * (wide[3, hi, x] - t)
        fx = ax * f + bx
        fz = az * f + bz
        ey = _finv(f)
        ex = _finv(fx) - ey  # X/Xn - Y: exactly 0 for zero chroma
        ez = _finv(fz) - ey
        d0 = cx[0] * ex + cz[0] * ez
        d1 = cx[1] * ex + cz[1] * ez
        d2 = cx[2] * ex + cz[2] * ez
        # largest step toward the gray of equal Y that stays inside [0, S]: neg_s = -s
        dmax = max(max(max(d0, d1), d2), _TINY)
        dmin = min(min(min(d0, d1), d2), -_TINY)
        y = ys[x]
        neg_s = max(max((y - scale) / dmax, y / dmin), -_ONE)
        lin[0, x] = y - neg_s * d0
        lin[1, x] = y - neg_s * d1
        lin[2, x] = y - neg_s * d2


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _merge_coded(gray, wide, ylo, yhi, yfrac, fy_table, y_table, cx, cz, scale, table, out):
    W = gray.shape[1]
    fy = np.empty(W, np.float32)
    ys = np.empty(W, np.float32)
    lin = np.empty((3, W), np.float32)
    top = table.shape[0] - 1
    for y in range(gray.shape[0]):
        _row_linear(gray[y], wide, ylo[y], yhi[y], yfrac[y], fy_table, y_table, cx, cz, scale, fy, ys, lin)
        for x in range(W):
            out[y, x, 0] = table[min(max(int(lin[0, x]), 0), top)]
            out[y, x, 1] = table[min(max(int(lin[1, x]), 0), top)]
            out[y, x, 2] = table[min(max(int(lin[2, x]), 0), top)]


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _srgb(lin):
    lin = min(max(lin, _ZERO), _ONE)
    if lin <= np.float32(0.0031308):
        return lin * np.float32(12.92)
    return np.float32(1.055) * lin ** np.float32(1.0 / 2.4) - np.float32(0.055)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _merge_float(gray, wide, ylo, yhi, yfrac, fy_table, y_table, cx, cz, scale, out):
    W = gray.shape[1]
    fy = np.empty(W, np.float32)
    ys = np.empty(W, np.float32)
    lin = np.empty((3, W), np.float32)
    for y in range(gray.shape[0]):
        _row_linear(gray[y], wide, ylo[y], yhi[y], yfrac[y], fy_table, y_table, cx, cz, scale, fy, ys, lin)
        for x in range(W):
            for c in range(3):
                out[y, x, c] = _srgb(lin[c, x])


def widen(small: np.ndarray, xlo: np.ndarray, xhi: np.ndarray, xfrac: np.ndarray) -> np.ndarray:
    """The maps' horizontal bilinear pass, (C, h, w) -> (C, h, W): once per scan, at map height."""
    left = np.take(small, xlo, axis=2)
    wide = np.take(small, xhi, axis=2)
    wide -= left
    wide *= xfrac
    wide += left
    return wide


def merge(gray: np.ndarray, m: MergeInputs, out_dtype: np.dtype) -> np.ndarray:
    """Run the kernel over a native-endian (H, W) uint8/uint16 gray; returns (H, W, 3) of out_dtype."""
    out = np.empty(gray.shape + (3,), dtype=out_dtype)
    small = m.small if m.has_a else np.concatenate([np.ones_like(m.small), m.small])  # a = 1: fx = 1 * fy + b = fy + b
    args = (np.ascontiguousarray(gray), widen(small, m.xlo, m.xhi, m.xfrac), m.ylo, m.yhi, m.yfrac,
            m.fy_table, m.y_table, m.cx, m.cz, np.float32(m.scale))
    if m.table is None:
        _merge_float(*args, out)
    else:
        _merge_coded(*args, m.table, out)
    return out
