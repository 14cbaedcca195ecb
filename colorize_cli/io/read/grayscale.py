"""Pure pixel maths of the I/O layer: colour to gray of the same luminance, wide integer and
float gray to 16 bits, EXIF orientation, bit-depth changes. No files, no metadata."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from colorize_cli import color


def orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to a (H, W[, C]) array, so the result is upright."""
    ops: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: x.swapaxes(0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: x[::-1, ::-1].swapaxes(0, 1),
        8: lambda x: np.rot90(x, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(a)) if op else a



def luminance8(rgb: np.ndarray, rows_per_chunk: int = 256) -> np.ndarray:
    """8-bit sRGB (H, W, 3) -> 8-bit gray of the same CIE luminance (color.rgb_to_gray),
    chunked so a large sepia scan never needs a full float copy."""
    if rgb.shape[0] and np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])  # already neutral: exact, and fast
    linear = color.srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)
    weights = color.LUMA.astype(np.float32)
    out = np.empty(rgb.shape[:2], dtype=np.uint8)
    for y0 in range(0, rgb.shape[0], rows_per_chunk):
        chunk = rgb[y0 : y0 + rows_per_chunk]
        y = sum(linear[chunk[..., c]] * weights[c] for c in range(3))
        out[y0 : y0 + rows_per_chunk] = to_uint8(color.linear_to_srgb(y))
    return out


def to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


def int32_to_16(a: np.ndarray) -> np.ndarray:
    """32-bit integer gray: values that fit in 16 bits are kept; otherwise the data is scaled
    by the smallest power of two that fits it (ratios kept, no tone curve invented)."""
    a = np.clip(a.astype(np.int64), 0, None)
    top = int(a.max()) if a.size else 0
    shift = max(0, top.bit_length() - 16)
    if shift:
        a = (a + (1 << (shift - 1))) >> shift
    return np.clip(a, 0, 65535).astype(np.uint16)


def float_to_16(a: np.ndarray) -> np.ndarray:
    """Float gray: read as 0..1 if it fits, else as 8-bit levels if it fits, else 16-bit levels."""
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(a.max()) if a.size else 0.0
    scale = 65535.0 if top <= 1.0 else (257.0 if top <= 255.0 else 1.0)
    return np.clip(np.rint(a * scale), 0, 65535).astype(np.uint16)



def luminance16(rgb: np.ndarray, rows_per_chunk: int = 256) -> np.ndarray:
    """16-bit sRGB (H, W, 3) -> 16-bit gray of the same CIE luminance, chunked like luminance8."""
    if rgb.shape[0] and np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])
    weights = color.LUMA.astype(np.float32)
    out = np.empty(rgb.shape[:2], dtype=np.uint16)
    for y0 in range(0, rgb.shape[0], rows_per_chunk):
        chunk = rgb[y0 : y0 + rows_per_chunk].astype(np.float32) / np.float32(65535.0)
        y = sum(color.srgb_to_linear(chunk[..., c]) * weights[c] for c in range(3))
        out[y0 : y0 + rows_per_chunk] = np.clip(np.rint(color.linear_to_srgb(y) * 65535.0), 0, 65535).astype(np.uint16)
    return out


def to_8bit(a: np.ndarray) -> np.ndarray:
    """uint16 -> uint8, rounded (v / 257 to nearest)."""
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


def match_depth(alpha: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if alpha.dtype == dtype:
        return alpha
    if dtype == np.uint16:
        return alpha.astype(np.uint16) * 257 if alpha.dtype == np.uint8 else alpha.astype(np.uint16)
    return to_8bit(alpha) if alpha.dtype == np.uint16 else np.clip(alpha, 0, 255).astype(np.uint8)

