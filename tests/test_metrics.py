"""Tests for colorize_cli.training.metrics: reference data, hand-derived values, and an
independent slow SSIM."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from colorize_cli.color import rgb_to_gray
from colorize_cli.training.metrics import (
    ImageScores,
    ciede2000,
    colourfulness,
    mean_ciede2000,
    mse_rgb,
    paired_difference,
    psnr_from_mse,
    psnr_rgb,
    score,
    ssim,
    summarise,
)

# Sharma, Wu & Dalal (2005), Table 1: L1, a1, b1, L2, a2, b2, Delta E00 (all 34 pairs).
SHARMA_2005 = np.array(
    [
        [50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425],
        [50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615],
        [50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412],
        [50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000],
        [50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000],
        [50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000],
        [50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669],
        [50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669],
        [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792],
        [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792],
        [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195],
        [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195],
        [50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045],
        [50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045],
        [50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461],
        [50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065],
        [50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492],
        [50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977],
        [50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030],
        [50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535],
        [50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000],
        [50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000],
        [50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000],
        [50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000],
        [60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644],
        [63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630],
        [61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731],
        [35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645],
        [22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373],
        [36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146],
        [90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441],
        [90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381],
        [6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377],
        [2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082],
    ]
)


def _photo_like(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth colour gradients plus noise: structure for SSIM to see, uint8 0-255."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([xx / w * 200 + 20, yy / h * 180 + 40, (xx + yy) / (h + w) * 150 + 60], axis=-1)
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- MSE / PSNR


def test_mse_is_mean_of_squared_differences_without_uint8_wraparound() -> None:
    a = np.full((2, 2, 3), 10, np.uint8)
    b = np.full((2, 2, 3), 20, np.uint8)
    b[0, 0, 0] = 0
    # eleven differences of 10 and one of 10 the other way: all squares are 100
    assert mse_rgb(a, b) == pytest.approx(100.0)
    assert mse_rgb(b, a) == pytest.approx(100.0)
    c = np.zeros((2, 2, 3), np.uint8)
    c[1, 1, 2] = 255
    assert mse_rgb(c, np.zeros_like(c)) == pytest.approx(255.0**2 / 12)


def test_mse_accepts_float_0_255_like_uint8() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert mse_rgb(a.astype(np.float32), b.astype(np.float64)) == pytest.approx(mse_rgb(a, b), rel=1e-12)


def test_mse_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"differ in shape: \(4, 4, 3\) vs \(4, 5, 3\)"):
        mse_rgb(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


def test_psnr_known_values_and_identical_images_are_infinite_without_warning() -> None:
    assert psnr_from_mse(255.0**2) == pytest.approx(0.0, abs=1e-12)
    assert psnr_from_mse(1.0) == pytest.approx(48.130803608679, abs=1e-9)  # 20 log10(255)
    assert psnr_from_mse(331.06) == pytest.approx(22.93, abs=0.005)  # the U-Net seed report
    a = np.full((3, 3, 3), 10, np.uint8)
    b = np.full((3, 3, 3), 20, np.uint8)
    assert psnr_rgb(a, b) == pytest.approx(10 * math.log10(255.0**2 / 100.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert psnr_rgb(a, a) == math.inf


def test_psnr_rejects_negative_mse() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        psnr_from_mse(-1.0)


# ---------------------------------------------------------------- SSIM


def _slow_ssim_channel(x: np.ndarray, y: np.ndarray) -> float:
    """Direct definition, window by window: centred weighted moments under a 2-D Gaussian."""
    r = 5
    offsets = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(x.shape[0] - 2 * r):
        for j in range(x.shape[1] - 2 * r):
            px = x[i : i + 2 * r + 1, j : j + 2 * r + 1]
            py = y[i : i + 2 * r + 1, j : j + 2 * r + 1]
            mx, my = (w * px).sum(), (w * py).sum()
            vx = (w * (px - mx) ** 2).sum()
            vy = (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_direct_windowed_definition() -> None:
    rng = np.random.default_rng(2)
    truth = _photo_like(rng, 23, 29)
    pred = np.clip(truth.astype(np.float64) * 0.8 + rng.normal(0, 20, truth.shape) + 15, 0, 255).astype(np.uint8)
    expected = np.mean([_slow_ssim_channel(pred[..., c].astype(float), truth[..., c].astype(float)) for c in range(3)])
    got = ssim(pred, truth)
    assert 0.2 < expected < 0.95  # a genuinely partial similarity, not a trivial case
    assert got == pytest.approx(expected, abs=1e-5)


def test_ssim_of_rgb_is_the_mean_of_per_channel_ssim() -> None:
    rng = np.random.default_rng(3)
    a = _photo_like(rng, 30, 40)
    b = _photo_like(rng, 30, 40)
    per_channel = [ssim(a[..., c], b[..., c]) for c in range(3)]
    assert len(set(np.round(per_channel, 6))) == 3
    assert ssim(a, b) == pytest.approx(np.mean(per_channel), abs=1e-12)


def test_ssim_identical_is_one_symmetric_and_drops_with_damage() -> None:
    rng = np.random.default_rng(4)
    a = _photo_like(rng, 40, 50)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    noisy = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(a + rng.normal(0, 60, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, noisy) == pytest.approx(ssim(noisy, a), abs=1e-12)
    assert 1.0 > ssim(a, noisy) > ssim(a, noisier)


def test_ssim_rejects_images_smaller_than_the_window() -> None:
    with pytest.raises(ValueError, match=r"at least 11x11 pixels, got \(10, 30\)"):
        ssim(np.zeros((10, 30, 3)), np.zeros((10, 30, 3)))


# ---------------------------------------------------------------- CIEDE2000


def test_ciede2000_matches_sharma_2005_table_1() -> None:
    got = ciede2000(SHARMA_2005[:, 0:3], SHARMA_2005[:, 3:6])
    assert got.shape == (34,)
    np.testing.assert_allclose(got, SHARMA_2005[:, 6], atol=1e-4, rtol=0)


def test_ciede2000_is_symmetric_and_keeps_leading_shape() -> None:
    lab1 = SHARMA_2005[:, 0:3].reshape(2, 17, 3)
    lab2 = SHARMA_2005[:, 3:6].reshape(2, 17, 3)
    forward = ciede2000(lab1, lab2)
    assert forward.shape == (2, 17)
    np.testing.assert_allclose(forward, ciede2000(lab2, lab1), atol=1e-12)
    np.testing.assert_array_equal(ciede2000(lab1, lab1), np.zeros((2, 17)))


def test_ciede2000_pure_lightness_step_at_l50_is_the_lightness_difference() -> None:
    # Achromatic pair with mean L' = 50: S_L = 1 and every chroma/hue term vanishes.
    assert ciede2000(np.array([40.0, 0, 0]), np.array([60.0, 0, 0])) == pytest.approx(20.0, abs=1e-12)


def test_ciede2000_rejects_non_lab_arrays() -> None:
    with pytest.raises(ValueError, match=r"axis of 3 \(L\*, a\*, b\*\), got shape \(5, 2\)"):
        ciede2000(np.zeros((5, 2)), np.zeros((5, 2)))


def test_mean_ciede2000_black_vs_white_is_100() -> None:
    black = np.zeros((4, 6, 3), np.uint8)
    white = np.full((4, 6, 3), 255, np.uint8)
    # Lab (0,0,0) vs (100,0,0): mean L' 50, so Delta E00 = Delta L* = 100.
    assert mean_ciede2000(black, white) == pytest.approx(100.0, abs=1e-3)
    assert mean_ciede2000(white, white) == pytest.approx(0.0, abs=1e-6)


def test_mean_ciede2000_averages_over_pixels() -> None:
    black = np.zeros((2, 2, 3), np.uint8)
    half = black.copy()
    half[0] = 255  # two of four pixels white
    assert mean_ciede2000(black, half) == pytest.approx(50.0, abs=1e-3)


# ---------------------------------------------------------------- colourfulness


def test_colourfulness_of_gray_is_zero() -> None:
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    assert colourfulness(np.repeat(gray[..., None], 3, axis=-1)) == pytest.approx(0.0, abs=1e-12)


def test_colourfulness_hand_computed_2x2_zero_mean() -> None:
    # red, green / blue, white:  rg = 255, -255, 0, 0 (mean 0, var 255^2/2)
    #                            yb = 127.5, 127.5, -255, 0 (mean 0, var (2*127.5^2 + 255^2)/4)
    img = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    expected = math.sqrt(255**2 / 2 + (2 * 127.5**2 + 255**2) / 4)
    assert colourfulness(img) == pytest.approx(expected, abs=1e-9)  # about 238.53


def test_colourfulness_hand_computed_2x2_with_mean_term() -> None:
    # two red, two black: rg = 255, 255, 0, 0 (mean 127.5, sd 127.5); yb = 127.5, 127.5, 0, 0
    # (mean 63.75, sd 63.75). Both sqrt terms equal 63.75 * sqrt(5), so M = 1.3 * 63.75 * sqrt(5).
    img = np.array([[[255, 0, 0], [255, 0, 0]], [[0, 0, 0], [0, 0, 0]]], np.uint8)
    assert colourfulness(img) == pytest.approx(1.3 * 63.75 * math.sqrt(5), abs=1e-9)  # about 185.31


def test_colourfulness_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\), got shape \(4, 4\)"):
        colourfulness(np.zeros((4, 4)))


# ---------------------------------------------------------------- score / summarise


def test_score_of_perfect_prediction() -> None:
    rng = np.random.default_rng(6)
    truth = _photo_like(rng, 32, 24)
    s = score(truth.copy(), truth)
    assert s.mse == 0.0 and s.psnr == math.inf
    assert s.ssim == pytest.approx(1.0, abs=1e-12)
    assert s.ciede2000 == pytest.approx(0.0, abs=1e-9)
    assert s.colourfulness_pred == pytest.approx(s.colourfulness_truth) and s.colourfulness_truth > 10


def test_score_of_gray_prediction_puts_colourfulness_on_the_right_side() -> None:
    rng = np.random.default_rng(7)
    truth = _photo_like(rng, 32, 24)
    gray = np.round(rgb_to_gray(truth / 255.0) * 255).astype(np.uint8)
    pred = np.repeat(gray[..., None], 3, axis=-1)
    s = score(pred, truth)
    assert s.colourfulness_pred == pytest.approx(0.0, abs=1e-12)
    assert s.colourfulness_truth > 10
    assert s.mse == pytest.approx(mse_rgb(pred, truth))
    assert s.psnr == pytest.approx(psnr_rgb(pred, truth))
    assert 0 < s.ssim < 1 and s.ciede2000 > 1


def test_score_requires_uint8_rgb_of_equal_shape() -> None:
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="prediction must be uint8 RGB, got dtype float32"):
        score(img.astype(np.float32), img)
    with pytest.raises(ValueError, match=r"ground truth must be an RGB image .*got shape \(16, 16\)"):
        score(img, img[..., 0])
    with pytest.raises(ValueError, match="differ in shape"):
        score(img, np.zeros((16, 17, 3), np.uint8))


def test_summarise_means_psnr_two_ways_and_colourfulness_ratio() -> None:
    scores = [
        ImageScores(mse=1.0, psnr=psnr_from_mse(1.0), ssim=0.9, ciede2000=2.0,
                    colourfulness_pred=10.0, colourfulness_truth=40.0),
        ImageScores(mse=100.0, psnr=psnr_from_mse(100.0), ssim=0.7, ciede2000=6.0,
                    colourfulness_pred=30.0, colourfulness_truth=40.0),
    ]
    out = summarise(scores)
    assert out["n"] == 2
    assert out["mse"] == pytest.approx(50.5)
    assert out["psnr"] == pytest.approx((48.1308036 + 28.1308036) / 2, abs=1e-6)
    assert out["psnr_of_mean_mse"] == pytest.approx(10 * math.log10(255**2 / 50.5))
    assert out["psnr_of_mean_mse"] < out["psnr"]  # Jensen: one bad image weighs more in MSE
    assert out["ssim"] == pytest.approx(0.8)
    assert out["ciede2000"] == pytest.approx(4.0)
    assert out["colourfulness_ratio"] == pytest.approx(0.5)


def test_summarise_all_gray_truth_gives_nan_ratio_and_empty_fails() -> None:
    s = ImageScores(mse=4.0, psnr=psnr_from_mse(4.0), ssim=0.5, ciede2000=1.0,
                    colourfulness_pred=3.0, colourfulness_truth=0.0)
    assert math.isnan(summarise([s])["colourfulness_ratio"])
    with pytest.raises(ValueError, match="no scores to summarise"):
        summarise([])


def test_paired_difference_known_values() -> None:
    same = paired_difference([20.0, 25.0, 30.0], [21.0, 26.0, 31.0])  # B one dB better on every photo
    assert (same.n, same.mean, same.low, same.high, same.higher) == (3, 1.0, 1.0, 1.0, 1.0)
    split = paired_difference([0.0] * 4, [2.0, -2.0, 2.0, -2.0])
    assert split.mean == 0.0 and split.higher == 0.5 and -2.0 <= split.low < 0.0 < split.high <= 2.0


def test_paired_difference_interval_covers_the_mean_and_narrows_with_more_photos() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(24, 3, 400)  # photos differ by several dB; the models by 0.2 dB, with noise
    b = a + 0.2 + rng.normal(0, 0.5, 400)
    many, few = paired_difference(a, b), paired_difference(a[:25], b[:25])
    assert many.low < many.mean < many.high and 0.1 < many.mean < 0.3
    assert many.low > 0  # pairing sees a difference the photos' spread (3 dB) would hide
    assert (many.high - many.low) < (few.high - few.low) / 2
    assert paired_difference(a, b) == many  # seeded


def test_paired_difference_rejects_unequal_empty_or_infinite_scores() -> None:
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_difference([], [])
    with pytest.raises(ValueError, match=r"shapes \(2,\) and \(1,\)"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="not finite"):
        paired_difference([20.0, 30.0], [21.0, math.inf])
