import numpy as np
import pytest
import torch

from colorize_cli.merge.upsample import axis_map, box_mean, fit_guided
from reference import downsample_area, guided_rows, upsample_bilinear, upsample_guided, upsample_rows


def _torch_bilinear(small: np.ndarray, H: int, W: int) -> np.ndarray:
    t = torch.from_numpy(small).permute(2, 0, 1)[None]
    out = torch.nn.functional.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)
    return out[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize(
    "h,w,H,W",
    [(6, 9, 48, 72), (5, 7, 37, 61), (1, 4, 9, 13), (3, 1, 100, 7), (10, 3, 10, 3), (40, 30, 17, 11)],
)
def test_bilinear_matches_torch_align_corners_false(h, w, H, W):
    small = np.random.default_rng(h * 100 + w).normal(0, 30, (h, w, 2)).astype(np.float32)
    out = upsample_bilinear(small, H, W)
    assert out.shape == (H, W, 2) and out.dtype == np.float32
    # values are ~30; torch computes source coordinates in float32, this module in float64
    np.testing.assert_allclose(out, _torch_bilinear(small, H, W), atol=1e-3, rtol=0)


def test_rows_in_strips_equal_the_whole_image():
    small = np.random.default_rng(1).normal(0, 30, (7, 11, 2)).astype(np.float32)
    H, W = 123, 170
    whole = upsample_bilinear(small, H, W)
    strips = np.concatenate([upsample_rows(small, H, W, y, min(y + 10, H)) for y in range(0, H, 10)])
    np.testing.assert_array_equal(strips, whole)


def test_axis_map_samples_pixel_centres():
    m = axis_map(2, 4)  # output centres 0.5, 1.5, 2.5, 3.5 sit at input -0.25, 0.25, 0.75, 1.25
    assert m.lo.tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(m.frac, [0.0, 0.25, 0.75, 0.0])


def _edge_scene(H=64, W=256, edge=131, factor=8, horizontal=False):
    """Sharp L* step with a different colour on each side; chroma known only at 1/factor size."""
    left = np.arange(W) < edge
    lightness = np.where(left, 30.0, 75.0).astype(np.float32)[None].repeat(H, 0)
    ab = np.zeros((H, W, 2), np.float32)
    ab[:, left] = (25.0, -10.0)
    ab[:, ~left] = (-20.0, 35.0)
    if horizontal:
        lightness, ab = lightness.T.copy(), ab.transpose(1, 0, 2).copy()
    h, w = lightness.shape[0] // factor, lightness.shape[1] // factor
    ab_small = np.stack([downsample_area(ab[..., c], h, w) for c in range(2)], axis=-1)
    return lightness, ab, ab_small


def _mixed_pixels(line: np.ndarray, a_left: float, a_right: float) -> int:
    """Pixels along a line whose a* is more than 10% of the way from either side's colour."""
    t = (line - a_right) / (a_left - a_right)
    return int(((t > 0.1) & (t < 0.9)).sum())


@pytest.mark.parametrize("horizontal", [False, True])
def test_guided_colour_stops_at_a_sharp_lightness_edge(horizontal):
    lightness, ab, ab_small = _edge_scene(horizontal=horizontal)
    H, W = lightness.shape
    bil = upsample_bilinear(ab_small, H, W)
    gui = upsample_guided(ab_small, lightness)
    across = (lambda x: x[H // 2, :, 0]) if not horizontal else (lambda x: x[:, W // 2, 0])
    mixed_bil = _mixed_pixels(across(bil), 25.0, -20.0)
    mixed_gui = _mixed_pixels(across(gui), 25.0, -20.0)
    assert mixed_bil >= 8  # bilinear smears the colour over about one small pixel
    assert mixed_gui <= mixed_bil // 2
    assert np.abs(gui - ab).mean() < 0.5 * np.abs(bil - ab).mean()


def test_guided_equals_bilinear_where_lightness_is_flat():
    H, W = 96, 128
    yy, xx = np.mgrid[0:12, 0:16].astype(np.float32)
    ab_small = np.stack([20 * np.sin(xx / 3.0) + yy, 15 * np.cos(yy / 2.0) - xx], axis=-1).astype(np.float32)
    flat = np.full((H, W), 55.0, np.float32)
    np.testing.assert_allclose(upsample_guided(ab_small, flat), upsample_bilinear(ab_small, H, W), atol=1e-3)


def test_guided_rows_in_strips_equal_the_whole_image():
    lightness, _, ab_small = _edge_scene()
    H = lightness.shape[0]
    coeffs = fit_guided(ab_small, downsample_area(lightness, *ab_small.shape[:2]), 1, 64.0)
    whole = guided_rows(coeffs, lightness, H, 0)
    strips = np.concatenate([guided_rows(coeffs, lightness[y : y + 5], H, y) for y in range(0, H, 5)])
    np.testing.assert_array_equal(strips, whole)
    np.testing.assert_array_equal(whole, upsample_guided(ab_small, lightness, 1, 64.0, strip_rows=7))


def test_guided_uses_a_given_small_guide():
    lightness, _, ab_small = _edge_scene()
    given = downsample_area(lightness, *ab_small.shape[:2])
    np.testing.assert_array_equal(
        upsample_guided(ab_small, lightness, lightness_small=given), upsample_guided(ab_small, lightness)
    )


def test_box_mean_is_the_mean_over_clipped_windows():
    x = np.random.default_rng(3).normal(size=(9, 13, 2))
    r = 2
    expected = np.empty_like(x)
    for i in range(9):
        for j in range(13):
            expected[i, j] = x[max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1].mean(axis=(0, 1))
    np.testing.assert_allclose(box_mean(x, r), expected, atol=1e-12)


def test_downsample_area_averages_blocks():
    x = np.random.default_rng(4).random((40, 60)).astype(np.float32)
    np.testing.assert_allclose(downsample_area(x, 10, 15), x.reshape(10, 4, 15, 4).mean(axis=(1, 3)), atol=1e-6)


def test_bad_inputs_are_refused_with_a_reason():
    small = np.zeros((4, 5, 2), np.float32)
    with pytest.raises(ValueError, match=r"expected a small \(h, w, channels\) map"):
        upsample_bilinear(np.zeros((4, 5), np.float32), 10, 10)
    with pytest.raises(ValueError, match=r"rows 5:5 are not a non-empty range inside 0:10"):
        upsample_rows(small, 10, 10, 5, 5)
    with pytest.raises(ValueError, match=r"cannot upsample to 0x10 px"):
        upsample_rows(small, 0, 10, 0, 1)
    with pytest.raises(ValueError, match=r"guide of shape \(3, 5\) does not match the chroma map's \(4, 5\)"):
        fit_guided(small, np.zeros((3, 5)), 1, 1.0)
    with pytest.raises(ValueError, match="radius must not be negative"):
        fit_guided(small, np.zeros((4, 5)), -1, 1.0)
    with pytest.raises(ValueError, match="eps must be positive"):
        fit_guided(small, np.zeros((4, 5)), 1, 0.0)
