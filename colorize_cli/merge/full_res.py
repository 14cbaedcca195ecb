"""The full-resolution merge: a scan's own L* plus the network's small a*b* map -> sRGB output.

A scan is colorized by merging its own L* with the network's small a*b* map, brought up to full
resolution. The maths is that of `color.merge_chroma` (the float reference); this module only
prepares the small things once per scan and hands the pixels to a kernel that touches each
output pixel once:

  * the gray code value alone fixes L*, hence fy = (L* + 16) / 116 and the luminance Y: both
    come from lookup tables, and saturation and the Lab scale factors are folded into the small
    chroma maps, so full-resolution fx, fz are one multiply-add (or add) of fy;
  * Y is known, so linear RGB = Y + d with d linear in f^-1(fx) - f^-1(fy) and f^-1(fz) - f^-1(fy):
    zero chroma gives d = 0 exactly, and the luminance-keeping gamut fit only needs max(d), min(d);
  * linear -> sRGB code values is one table lookup per channel (2**16 or 2**20 bins), patched so
    that the bin of every gray level's own Y holds exactly that gray level.

Two kernels do the per-pixel work: `merge_cpu` (numba, compiled once and cached on disk; one
row at a time, without the GIL, so the engine's writer threads merge side by side) and
`merge_torch` (the same maths in torch, for a GPU: the network's device merges too). They are
tested against each other and against the float reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from colorize_cli.color import WHITE_D65, XYZ_TO_RGB, gray_to_lightness
from colorize_cli.merge.inputs import MergeInputs, encode_table, gray_code_tables
from colorize_cli.merge.upsample import DEFAULT_EPS, DEFAULT_RADIUS, axis_map, fit_guided

if TYPE_CHECKING:
    import torch

def _chroma_maps(
    gray: np.ndarray,
    ab_small: np.ndarray,
    saturation: float,
    upsample: str,
    lightness_small: np.ndarray | None,
    radius: int,
    eps: float,
) -> tuple[np.ndarray, bool]:
    """(small maps (C, h, w), has_a): saturation and the Lab scales (a*/500, -b*/200) folded in, once."""
    scale = np.array([saturation / 500.0, -saturation / 200.0])
    if upsample == "bilinear":
        return np.ascontiguousarray((ab_small * scale).astype(np.float32).transpose(2, 0, 1)), False
    h, w = ab_small.shape[:2]
    if lightness_small is None:  # area average of the gray: cheap, and close to that of L*
        top = np.iinfo(gray.dtype).max
        small_gray = Image.fromarray(np.ascontiguousarray(gray)).resize((w, h), Image.Resampling.BOX)
        lightness_small = gray_to_lightness(np.asarray(small_gray, dtype=np.float32) / np.float32(top))
    coeffs = fit_guided(ab_small, lightness_small, radius, eps)
    # chroma = a * L* + b with L* = 116 fy - 16, so fx = (1 + s*116*a/500) fy + s*(b - 16 a)/500
    a = 1.0 + 116.0 * coeffs.a.astype(np.float64) * scale
    b = (coeffs.b.astype(np.float64) - 16.0 * coeffs.a) * scale
    maps = np.concatenate([a, b], axis=2).astype(np.float32)
    return np.ascontiguousarray(maps.transpose(2, 0, 1)), True


def prepare(
    gray: np.ndarray,
    ab_small: np.ndarray,
    saturation: float,
    upsample: str,
    out_dtype: np.dtype,
    lightness_small: np.ndarray | None,
    radius: int,
    eps: float,
) -> MergeInputs:
    """The per-scan small inputs of a kernel (validated arguments)."""
    H, W = gray.shape
    small, has_a = _chroma_maps(gray, ab_small, saturation, upsample, lightness_small, radius, eps)
    levels = np.iinfo(gray.dtype).max + 1
    fy_table, y_table = gray_code_tables(levels)
    if out_dtype == np.float32:
        table, scale = None, np.float32(1.0)
    else:
        table, scale = encode_table(levels, out_dtype.name)
    ym, xm = axis_map(small.shape[1], H), axis_map(small.shape[2], W)
    # d_c = S * (M[c,0] Xn (X/Xn - Y) + M[c,2] Zn (Z/Zn - Y)): linear RGB minus the gray of equal Y
    cx = (float(scale) * XYZ_TO_RGB[:, 0] * WHITE_D65[0]).astype(np.float32)
    cz = (float(scale) * XYZ_TO_RGB[:, 2] * WHITE_D65[2]).astype(np.float32)
    return MergeInputs(small, has_a, ym.lo, ym.hi, ym.frac, xm.lo, xm.hi, xm.frac, fy_table, y_table, cx, cz, scale, table)


def merge_device(network_device: torch.device) -> torch.device | None:
    """Where the merge runs: on the network's device, except the CPU, where the numba kernel is
    faster than torch (None: the CPU kernel)."""
    return None if network_device.type == "cpu" else network_device


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
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Full-resolution gray scan (H, W) uint8/uint16 + small a*b* (h, w, 2) -> sRGB (H, W, 3).

    The output keeps the scan's L* (out-of-gamut chroma is reduced at constant luminance), and
    zero chroma gives back exactly (g, g, g). ``out_dtype`` is uint8, uint16 or float32 (sRGB
    in [0, 1]); None means the gray's dtype. For "guided" the guide at the map's size is the
    box-averaged gray unless ``lightness_small`` is given.

    ``device`` None runs the compiled CPU kernel, row by row, holding nothing besides the output.
    A torch device runs the torch kernel there (on a GPU: the gray goes up and the RGB comes
    down through pinned memory), in strips of ``strip_rows`` rows (None: a few megapixels),
    which bound its memory; the CPU kernel has no use for strips."""
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

    inputs = prepare(gray, ab_small, saturation, upsample, out_dt, lightness_small, radius, eps)
    if device is not None:
        from colorize_cli.merge.torch_kernel import merge_on_device  # noqa: PLC0415 - torch only where a device is asked for

        return merge_on_device(gray, inputs, out_dt, device, strip_rows)
    from colorize_cli.merge.cpu import merge  # noqa: PLC0415 - numba loads with the first merge, not at start-up

    return merge(gray, inputs, out_dt)


def warm_up() -> None:
    """Load numba and the CPU kernel for 8-bit scans (compiling it on a machine's first run), so
    that the first scan of a run does not wait for it: the engine calls this as it starts."""
    colorize_full_res(np.zeros((2, 2), np.uint8), np.zeros((1, 1, 2), np.float32))
