"""What the merge kernels share: the Lab constants they compute with, the per-level lookup
tables and the prepared per-scan inputs. Its own module so that `merge` (which chooses a kernel)
and the kernels (`merge_cpu`, `merge_torch`) all import it, and none imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from colorize_cli.color import gray_to_lightness, linear_to_srgb

FINV_KNEE = np.float32(6.0 / 29.0)  # f^-1 is t**3 above the knee, linear below it
FINV_SLOPE = np.float32(3.0 * (6.0 / 29.0) ** 2)  # slope of the linear part (tangent at the knee)
GAMUT_TINY = np.float32(1e-30)  # keeps max(d) > 0 > min(d) so the gamut ratios never divide by 0


def finv(t: np.ndarray) -> np.ndarray:
    """f^-1 of the Lab definition without np.where: m * (m**2 - slope) + slope * t, m = max(t, knee).

    Above the knee this is t**3; below it, knee**3 + slope * (t - knee), which is exactly the
    linear branch (the line is the cube's tangent at the knee). The kernels use this very
    sequence of float32 operations."""
    t = np.asarray(t, dtype=np.float32)
    m = np.maximum(t, FINV_KNEE)
    return ((m * m - FINV_SLOPE) * m + t * FINV_SLOPE).astype(np.float32)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@lru_cache(maxsize=4)
def gray_code_tables(levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(fy, Y) float32 tables for the code values of an integer gray image with ``levels`` levels."""
    gray = (np.arange(levels, dtype=np.float64) / (levels - 1)).astype(np.float32)
    fy = ((gray_to_lightness(gray) + np.float32(16.0)) / np.float32(116.0)).astype(np.float32)
    return _readonly(fy), _readonly(finv(fy))


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
    own_bin = (y * scale).astype(np.intp)  # the same float32 product the kernels truncate
    table[own_bin] = np.rint(np.arange(in_levels) * (out_max / (in_levels - 1))).astype(out_dtype)
    return _readonly(table), scale


@dataclass(frozen=True)
class MergeInputs:
    """Everything a kernel needs besides the gray pixels; all small (tables and per-axis maps).

    Full-resolution fx = a_x * fy + b_x and fz = a_z * fy + b_z, where the maps are bilinear
    samples of ``small``: channels (a_x, a_z, b_x, b_z), or (b_x, b_z) with a = 1 when
    ``has_a`` is False. Linear RGB, scaled by ``scale``, is ys + s * d with
    d_c = cx[c] (f^-1(fx) - f^-1(fy)) + cz[c] (f^-1(fz) - f^-1(fy)) and ys = Y * scale."""

    small: np.ndarray  # (C, h, w) float32, C-contiguous
    has_a: bool
    ylo: np.ndarray  # (H,) intp: output row -> small rows ylo, yhi blended by yfrac
    yhi: np.ndarray
    yfrac: np.ndarray  # (H,) float32
    xlo: np.ndarray  # (W,) intp
    xhi: np.ndarray
    xfrac: np.ndarray  # (W,) float32
    fy_table: np.ndarray  # (levels,) float32
    y_table: np.ndarray  # (levels,) float32
    cx: np.ndarray  # (3,) float32
    cz: np.ndarray  # (3,) float32
    scale: np.float32  # 1 for float output, else the encode table's bin scale
    table: np.ndarray | None  # encode table, None for float32 output
