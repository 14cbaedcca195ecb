"""Pure colour maths: sRGB <-> CIE Lab (D65), gray <-> L*, and the float reference merge.

All functions take and return float32 numpy arrays with channels last. Gray values and
RGB values are display-encoded sRGB in [0, 1]; L* is in [0, 100]; a*, b* are in Lab units.
A gray pixel g is read as the sRGB colour (g, g, g), so merging zero chroma onto its L*
gives back exactly (g, g, g).

The full-resolution merge a run uses is `merge.colorize_full_res` (one compiled pass over the
pixels); `merge_chroma` here is the plain float definition it is tested against.
"""

from __future__ import annotations

import numpy as np

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

EPSILON = 216.0 / 24389.0  # CIE: below this Y/Yn the Lab curve is linear, not a cube root
KAPPA = 24389.0 / 27.0  # CIE: on that linear part, L* = KAPPA * Y/Yn


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
    return np.where(t > EPSILON, np.cbrt(t), (KAPPA * t + 16.0) / 116.0)


def _f_inv(t: np.ndarray) -> np.ndarray:
    return np.where(t**3 > EPSILON, t**3, (116.0 * t - 16.0) / KAPPA)


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

    Reference implementation: the plain float definition of the merge, kept for checking the
    compiled kernels (merge.colorize_full_res) and for small arrays; it holds several float
    copies of the image, so a run never calls it on a scan.

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
