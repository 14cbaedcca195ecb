"""Image-quality metrics for judging colorizations against the colour originals.

No single number says whether a colorization is good: per-pixel error (MSE/PSNR) rewards dull,
desaturated guesses; SSIM adds structure; CIEDE2000 measures colour error the way people see it;
colourfulness catches the "right on average, but gray" failure. They are reported together.

Everything is plain numpy in float64 (SSIM's variance terms cancel badly in float32), vectorised
so that a few hundred ~500x500 images score in seconds. RGB images are (H, W, 3) arrays in 0-255,
uint8 or float; arithmetic is never done in uint8, so differences cannot wrap around.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from colorize_cli.color import rgb_to_lab
from colorize_cli.report.measures import colourfulness

PEAK = 255.0  # the dynamic range L of 8-bit images, used by PSNR and SSIM

# SSIM constants from Wang et al. 2004, Sec. III-B.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_float_pair(a: ArrayLike, b: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    if x.size == 0:
        raise ValueError(f"images are empty: shape {x.shape}")
    return x, y


def _check_rgb(x: NDArray[np.generic], what: str) -> None:
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"{what} must be an RGB image of shape (H, W, 3), got shape {x.shape}")


def mse_rgb(a: ArrayLike, b: ArrayLike) -> float:
    """Mean squared error over all pixels and channels, on 0-255 values.

    MSE = mean((a - b)^2): the metric of the seed reports (e.g. "validation MSE 331.06 on 0-255
    RGB"), so ours can be set beside theirs. Inputs are cast to float64 before subtracting."""
    x, y = _as_float_pair(a, b)
    return float(np.mean(np.square(x - y)))


def psnr_from_mse(mse: float, peak: float = PEAK) -> float:
    """PSNR = 10 log10(peak^2 / MSE) in dB (the usual definition, e.g. Huynh-Thu & Ghanbari,
    "Scope of validity of PSNR in image/video quality assessment", Electronics Letters 44(13),
    2008); identical images (MSE 0) give +inf rather than a divide-by-zero warning."""
    if mse < 0 or math.isnan(mse):
        raise ValueError(f"MSE must be a non-negative number, got {mse}")
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def psnr_rgb(a: ArrayLike, b: ArrayLike) -> float:
    """Peak signal-to-noise ratio of two 0-255 images: 10 log10(255^2 / MSE), +inf if identical."""
    return psnr_from_mse(mse_rgb(a, b))


def gaussian_kernel(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> NDArray[np.float64]:
    """1-D normalised Gaussian; its outer product with itself is MATLAB's fspecial('gaussian',
    size, sigma), the window of Wang et al.'s reference code."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: NDArray[np.float64], kernel: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
    """Correlate along one axis, keeping only positions where the kernel fits ('valid').

    A sum of shifted, weighted slices: k passes of cheap vector arithmetic with no k-fold copy of
    the image (a sliding-window view followed by a dot product would materialise one)."""
    k = kernel.shape[0]
    n = x.shape[axis] - k + 1
    index: list[slice] = [slice(None)] * x.ndim

    def shifted(i: int) -> NDArray[np.float64]:
        index[axis] = slice(i, i + n)
        return x[tuple(index)]

    out = kernel[0] * shifted(0)
    scratch = np.empty_like(out)
    for i in range(1, k):
        out += np.multiply(shifted(i), kernel[i], out=scratch)
    return out


def ssim(a: ArrayLike, b: ArrayLike) -> float:
    """Mean structural similarity (Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment:
    from error visibility to structural similarity", IEEE TIP 13(4), 2004, Eqs. 13-17).

    SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 +
    sigma_y^2 + C2)), with C1 = (K1 L)^2, C2 = (K2 L)^2, K1 = 0.01, K2 = 0.03, L = 255, local
    statistics weighted by an 11x11 Gaussian window of sigma 1.5. As in the authors' reference
    code, the map is taken only where the window fits inside the image ('valid', no padding) and
    the image is not downsampled first. Inputs are (H, W) or (H, W, C) on 0-255; for colour
    images SSIM is computed on each channel separately and the per-channel means are averaged
    (there is no single standard colour SSIM; per-channel RGB is the common convention)."""
    x, y = _as_float_pair(a, b)
    if x.ndim not in (2, 3):
        raise ValueError(f"SSIM needs an (H, W) or (H, W, C) image, got shape {x.shape}")
    if min(x.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {x.shape[:2]}")
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]

    g = gaussian_kernel()
    # Filter all five local moments in one pass over a (5, H, W, C) stack.
    moments = np.stack([x, y, x * x, y * y, x * y])
    mu_x, mu_y, e_xx, e_yy, e_xy = _filter_valid(_filter_valid(moments, g, 1), g, 2)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov = e_xy - mu_x * mu_y

    c1 = (SSIM_K1 * PEAK) ** 2
    c2 = (SSIM_K2 * PEAK) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    per_channel = ssim_map.mean(axis=(0, 1))
    return float(per_channel.mean())


def ciede2000(
    lab1: ArrayLike, lab2: ArrayLike, k_l: float = 1.0, k_c: float = 1.0, k_h: float = 1.0
) -> NDArray[np.float64]:
    """Per-colour CIEDE2000 difference Delta E00 of Lab arrays shaped (..., 3) -> (...).

    Follows Sharma, Wu & Dalal, "The CIEDE2000 color-difference formula: implementation notes,
    supplementary test data, and mathematical observations", Color Res. Appl. 30(1), 2005,
    including their conventions for the cases the CIE text leaves open: hue angles in [0, 360),
    hue 0 and hue difference 0 when a chroma is zero, and the mean hue taken as the plain sum
    when either chroma is zero. k_L, k_C, k_H are the parametric factors (1 for reference
    conditions)."""
    p, q = _as_float_pair(lab1, lab2)
    if p.shape[-1] != 3:
        raise ValueError(f"Lab arrays must end in an axis of 3 (L*, a*, b*), got shape {p.shape}")
    l1, a1, b1 = p[..., 0], p[..., 1], p[..., 2]
    l2, a2, b2 = q[..., 0], q[..., 1], q[..., 2]
    pow25_7 = 25.0**7

    # a* is stretched so that near-neutral colours' hues are spread out (G factor).
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0
    c_mean7 = c_mean**7
    g = 0.5 * (1.0 - np.sqrt(c_mean7 / (c_mean7 + pow25_7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    # atan2(0, 0) is 0 in numpy, which is the paper's convention for achromatic colours.
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0

    chroma_product = c1p * c2p
    achromatic = chroma_product == 0

    dlp = l2 - l1
    dcp = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(achromatic, 0.0, dh)
    dhp = 2.0 * np.sqrt(chroma_product) * np.sin(np.radians(dh) / 2.0)

    lp_mean = (l1 + l2) / 2.0
    cp_mean = (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    hp_mean = np.where(
        achromatic,
        h_sum,
        np.where(
            np.abs(h1p - h2p) <= 180.0,
            h_sum / 2.0,
            np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0),
        ),
    )

    t = (
        1.0
        - 0.17 * np.cos(np.radians(hp_mean - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * hp_mean))
        + 0.32 * np.cos(np.radians(3.0 * hp_mean + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * hp_mean - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((hp_mean - 275.0) / 25.0) ** 2))
    cp_mean7 = cp_mean**7
    r_c = 2.0 * np.sqrt(cp_mean7 / (cp_mean7 + pow25_7))
    l50 = (lp_mean - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / np.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * cp_mean
    s_h = 1.0 + 0.015 * cp_mean * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c

    tl = dlp / (k_l * s_l)
    tc = dcp / (k_c * s_c)
    th = dhp / (k_h * s_h)
    return np.sqrt(tl * tl + tc * tc + th * th + r_t * tc * th)


def _lab_of(rgb255: NDArray[np.float64]) -> NDArray[np.float64]:
    return rgb_to_lab(rgb255 / PEAK).astype(np.float64)


def mean_ciede2000(rgb1: ArrayLike, rgb2: ArrayLike) -> float:
    """Mean per-pixel CIEDE2000 of two 0-255 sRGB images, via colorize_cli.color.rgb_to_lab
    (D65). A colour error in perceptual units: about 1 is just noticeable, 10+ is a different
    colour."""
    x, y = _as_float_pair(rgb1, rgb2)
    _check_rgb(x, "image")
    return float(np.mean(ciede2000(_lab_of(x), _lab_of(y))))


@dataclass(frozen=True)
class ImageScores:
    """All metrics for one predicted image against its colour original."""

    mse: float
    psnr: float
    ssim: float
    ciede2000: float
    colourfulness_pred: float
    colourfulness_truth: float


def score(pred_rgb_uint8: ArrayLike, truth_rgb_uint8: ArrayLike) -> ImageScores:
    """Score one colorization (H, W, 3) uint8 against the original (H, W, 3) uint8.

    uint8 is required so that a [0, 1] float image cannot be scored by mistake as near-black."""
    pred = np.asarray(pred_rgb_uint8)
    truth = np.asarray(truth_rgb_uint8)
    for what, img in (("prediction", pred), ("ground truth", truth)):
        if img.dtype != np.uint8:
            raise ValueError(f"{what} must be uint8 RGB, got dtype {img.dtype}")
        _check_rgb(img, what)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction and ground truth differ in shape: {pred.shape} vs {truth.shape}")
    mse = mse_rgb(pred, truth)
    return ImageScores(
        mse=mse,
        psnr=psnr_from_mse(mse),
        ssim=ssim(pred, truth),
        ciede2000=mean_ciede2000(pred, truth),
        colourfulness_pred=colourfulness(pred),
        colourfulness_truth=colourfulness(truth),
    )


def summarise(scores: list[ImageScores]) -> dict[str, float]:
    """Means over images, keyed by ImageScores field names, plus:

    - n: the number of images;
    - psnr_of_mean_mse: PSNR of the mean MSE, the way the seed reports turn their validation
      MSE into dB ("psnr" is the mean of per-image PSNRs, +inf if any image is reproduced exactly);
    - colourfulness_ratio: mean predicted over mean true colourfulness (1 = as vivid as the
      originals, below 1 = duller); NaN if the originals are all gray."""
    if not scores:
        raise ValueError("no scores to summarise")
    rows = [asdict(s) for s in scores]
    out: dict[str, float] = {"n": float(len(rows))}
    out.update({name: float(np.mean([row[name] for row in rows])) for name in rows[0]})
    out["psnr_of_mean_mse"] = psnr_from_mse(out["mse"])
    truth = out["colourfulness_truth"]
    out["colourfulness_ratio"] = out["colourfulness_pred"] / truth if truth > 0 else math.nan
    return out


@dataclass(frozen=True)
class PairedDifference:
    """How much model B differs from model A on the same photos, photo by photo."""

    n: int
    mean: float  # mean of B - A
    low: float  # 95 % bootstrap interval of that mean
    high: float
    higher: float  # share of photos where B - A > 0


def paired_difference(a: ArrayLike, b: ArrayLike, draws: int = 4000, seed: int = 0) -> PairedDifference:
    """The mean per-photo difference B - A with a percentile-bootstrap 95 % interval (photos
    resampled with replacement, seeded). Two models scored on the same photos differ far less
    than their means' spreads suggest, since most of the spread is the photos'; pairing removes it."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"expected two equal, non-empty lists of per-photo scores, got shapes {a.shape} and {b.shape}")
    d = b - a
    if not np.all(np.isfinite(d)):
        raise ValueError("a per-photo score is not finite (an exact reproduction has infinite PSNR)")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (draws, d.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return PairedDifference(int(d.size), float(d.mean()), float(low), float(high), float(np.mean(d > 0)))
