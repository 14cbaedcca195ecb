
import numpy as np
import pytest

from colorize_cli.color import gray_to_lightness, lab_to_rgb, merge_chroma, rgb_to_lab
from colorize_cli.merge.full_res import colorize_full_res, encode_table
from reference import upsample_bilinear, upsample_guided

RNG = np.random.default_rng(20240611)


def _scan(H, W, dtype=np.uint8, seed=0):
    """A gray 'photo': smooth shading, a hard-edged bright block and grain, covering the range."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = 0.5 + 0.45 * np.sin(xx / (W / 5.0)) * np.cos(yy / (H / 3.0))
    img[H // 4 : H // 2, W // 3 : W // 2] = 0.97
    img += rng.normal(0, 0.02, (H, W))
    top = np.iinfo(dtype).max
    return np.clip(np.rint(img * top), 0, top).astype(dtype)


def _chroma(h, w, spread=40.0, seed=1):
    return np.random.default_rng(seed).normal(0, spread, (h, w, 2)).astype(np.float32)


def _lightness(gray):
    return gray_to_lightness(gray.astype(np.float32) / np.float32(np.iinfo(gray.dtype).max))


def _to_unit(rgb):
    if rgb.dtype == np.float32:
        return rgb
    return rgb.astype(np.float32) / np.float32(np.iinfo(rgb.dtype).max)


def test_lab_rgb_round_trip_on_random_colours():
    rgb = RNG.random((20000, 3), dtype=np.float32)
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-4, rtol=0)
    lab = rgb_to_lab(rgb)  # in-gamut Lab colours survive the other way round too
    np.testing.assert_allclose(rgb_to_lab(lab_to_rgb(lab)), lab, atol=1e-3, rtol=0)


@pytest.mark.parametrize("upsample", ["bilinear", "guided"])
def test_fast_path_matches_the_float_reference(upsample):
    gray = _scan(120, 170)
    ab_small = _chroma(15, 21)  # strong chroma: much of it is out of gamut
    H, W = gray.shape
    lightness = _lightness(gray)
    if upsample == "bilinear":
        ab = upsample_bilinear(ab_small, H, W)
    else:
        from PIL import Image

        small_gray = np.asarray(Image.fromarray(gray).resize((21, 15), Image.Resampling.BOX), np.float32)
        ab = upsample_guided(ab_small, lightness, lightness_small=gray_to_lightness(small_gray / np.float32(255)))
    reference = merge_chroma(lightness, ab, saturation=1.3)

    fast = colorize_full_res(gray, ab_small, 1.3, upsample, out_dtype=np.float32)
    np.testing.assert_allclose(fast, reference, atol=1e-4, rtol=0)
    quantised = colorize_full_res(gray, ab_small, 1.3, upsample)
    assert quantised.dtype == np.uint8
    assert np.abs(quantised.astype(np.int32) - np.rint(reference * 255)).max() <= 1


@pytest.mark.parametrize("out_dtype,tolerance", [(np.float32, 2e-3), (np.uint16, 0.02), (np.uint8, 0.5)])
def test_output_keeps_the_scans_lightness(out_dtype, tolerance):
    gray = _scan(90, 130)
    rgb = colorize_full_res(gray, _chroma(9, 13, spread=60.0), 1.5, "guided", out_dtype=out_dtype)
    assert rgb.dtype == out_dtype and rgb.shape == (90, 130, 3)
    lab = rgb_to_lab(_to_unit(rgb))
    assert np.abs(lab[..., 0] - _lightness(gray)).max() <= tolerance
    assert np.hypot(lab[..., 1], lab[..., 2]).mean() > 10  # and it is really coloured


@pytest.mark.parametrize("upsample", ["bilinear", "guided"])
def test_zero_chroma_gives_the_gray_back_exactly_8_bit(upsample):
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16).repeat(3, axis=0).repeat(5, axis=1)
    rgb = colorize_full_res(gray, np.zeros((6, 9, 2), np.float32), 1.0, upsample)
    np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=2))
    as16 = colorize_full_res(gray, np.zeros((6, 9, 2), np.float32), 1.0, upsample, out_dtype=np.uint16)
    np.testing.assert_array_equal(as16, np.repeat(gray[..., None].astype(np.uint16) * 257, 3, axis=2))


@pytest.mark.parametrize("upsample", ["bilinear", "guided"])
def test_zero_chroma_gives_the_gray_back_exactly_16_bit(upsample):
    gray = np.arange(65536, dtype=np.uint16).reshape(256, 256)  # every 16-bit level once
    gray = gray[RNG.permutation(256)]
    rgb = colorize_full_res(gray, np.zeros((16, 16, 2), np.float32), 1.0, upsample)
    assert rgb.dtype == np.uint16
    np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=2))
    as8 = colorize_full_res(gray, np.zeros((16, 16, 2), np.float32), 1.0, upsample, out_dtype=np.uint8)
    expected8 = np.rint(gray.astype(np.float64) / 257).astype(np.uint8)
    np.testing.assert_array_equal(as8, np.repeat(expected8[..., None], 3, axis=2))


def test_zero_saturation_gives_the_gray_back():
    gray = _scan(50, 70)
    np.testing.assert_array_equal(colorize_full_res(gray, _chroma(5, 7), 0.0), np.repeat(gray[..., None], 3, 2))


def test_big_endian_16_bit_input_is_read_by_value():
    gray = _scan(40, 60, np.uint16)
    ab_small = _chroma(4, 6)
    np.testing.assert_array_equal(
        colorize_full_res(gray.astype(">u2"), ab_small), colorize_full_res(gray, ab_small)
    )


@pytest.mark.parametrize("upsample", ["bilinear", "guided"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_strips_equal_the_whole_image(upsample, dtype):
    gray = _scan(97, 143, dtype)
    ab_small = _chroma(11, 16)
    whole = colorize_full_res(gray, ab_small, 1.2, upsample, strip_rows=97)
    for rows in (1, 7, 40):
        np.testing.assert_array_equal(colorize_full_res(gray, ab_small, 1.2, upsample, strip_rows=rows), whole)
    np.testing.assert_array_equal(colorize_full_res(gray, ab_small, 1.2, upsample), whole)


def test_chroma_map_larger_than_the_scan_is_fine():
    gray = _scan(40, 30)
    ab_small = _chroma(80, 60, spread=10.0)
    reference = merge_chroma(_lightness(gray), upsample_bilinear(ab_small, 40, 30))
    fast = colorize_full_res(gray, ab_small, 1.0, "bilinear", strip_rows=3, out_dtype=np.float32)
    np.testing.assert_allclose(fast, reference, atol=1e-4, rtol=0)


def test_encode_table_holds_every_gray_level_in_its_own_bin():
    table, scale = encode_table(65536, "uint16")
    assert table.size == 2**20 and scale == 2**20 - 1
    assert (np.diff(table.astype(np.int64)) >= 0).all()  # monotonic: brighter never encodes darker
    with pytest.raises(ValueError):
        table[0] = 1  # shared cached state is read-only


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(gray=np.zeros((4, 4), np.float32)), r"uint8 or uint16 gray image, got float32 \(4, 4\)"),
        (dict(gray=np.zeros((4, 4, 3), np.uint8)), r"\(H, W\) uint8 or uint16 gray image, got uint8 \(4, 4, 3\)"),
        (dict(ab_small=np.zeros((2, 2, 3), np.float32)), r"\(h, w, 2\) a\*b\* map, got shape \(2, 2, 3\)"),
        (dict(ab_small=np.full((2, 2, 2), np.nan, np.float32)), "NaN or infinite"),
        (dict(saturation=-1.0), "saturation must be a finite number >= 0, got -1.0"),
        (dict(upsample="bicubic"), "unknown chroma upsampling 'bicubic'"),
        (dict(strip_rows=0), "strip_rows must be at least 1, got 0"),
        (dict(out_dtype=np.int32), "output dtype must be uint8, uint16 or float32, got int32"),
    ],
)
def test_bad_inputs_are_refused_with_a_reason(kwargs, message):
    args = dict(gray=np.zeros((4, 4), np.uint8), ab_small=np.zeros((2, 2, 2), np.float32))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        colorize_full_res(**args)
