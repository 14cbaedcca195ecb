import numpy as np
import pytest

from colorize_cli.inference.tiling import Tile, blend, blend_weights, extract, plan_tiles


def _coverage(tiles, h, w):
    count = np.zeros((h, w), dtype=np.int32)
    for t in tiles:
        count[t.y0 : t.y1, t.x0 : t.x1] += 1
    return count


def _axis_spans(tiles, axis):
    if axis == 0:
        return sorted({(t.y0, t.y1) for t in tiles})
    return sorted({(t.x0, t.x1) for t in tiles})


SHAPES = [
    (3000, 2000, 512, 64, 32),
    (2000, 3000, 512, 64, 1),
    (75, 2000, 512, 64, 32),  # an 8000x300 panorama at a render size of 2000
    (300, 8000, 512, 64, 32),  # the same panorama at full size
    (8000, 300, 512, 64, 16),  # and turned on its side
    (513, 513, 512, 64, 16),  # one pixel too many
    (1000, 1000, 256, 0, 1),  # abutting tiles
    (997, 1301, 320, 100, 7),
]


@pytest.mark.parametrize("h,w,tile,overlap,stride", SHAPES)
def test_plan_covers_the_image_with_equal_tiles_that_overlap_enough(h, w, tile, overlap, stride):
    tiles = plan_tiles(h, w, tile, overlap, stride)
    assert (_coverage(tiles, h, w) >= 1).all()
    for axis, n in ((0, h), (1, w)):
        spans = _axis_spans(tiles, axis)
        sizes = {b - a for a, b in spans}
        assert len(sizes) == 1, f"tiles of different sizes along axis {axis}: {sizes}"
        size = sizes.pop()
        assert size <= tile
        if n > tile:
            assert size % stride == 0
            assert size > tile // 2, "tiles should be as large as allowed, not many tiny ones"
        else:
            assert spans == [(0, n)]
        assert spans[0][0] == 0 and spans[-1][1] == n
        for (a0, a1), (b0, _) in zip(spans, spans[1:]):
            assert a1 - b0 >= overlap, f"neighbours share only {a1 - b0} px"
            assert b0 > a0


def test_panorama_at_render_size_is_one_row_of_tiles():
    tiles = plan_tiles(75, 2000, 512, 64, 32)
    assert {(t.y0, t.y1) for t in tiles} == {(0, 75)}
    assert len(tiles) == 5  # 4 tiles of <= 512 px cannot cover 2000 px with 64 px overlaps


def test_small_image_is_a_single_tile():
    assert plan_tiles(300, 512, 512, 64, 32) == [Tile(0, 0, 300, 512)]
    assert plan_tiles(1, 1, 512, 64) == [Tile(0, 0, 1, 1)]


def test_tile_count_is_the_fewest_possible():
    # 3 tiles of 512 with 64 px overlaps cover exactly 3 * 512 - 2 * 64 = 1408 px.
    assert len(plan_tiles(1408, 100, 512, 64)) == 3
    assert len(plan_tiles(1409, 100, 512, 64)) == 4


@pytest.mark.parametrize(
    "tile,overlap,stride,message",
    [
        (64, 64, 1, r"overlap \(64 px\) must be smaller than the tile size \(64 px\)"),
        (64, 100, 1, r"overlap \(100 px\) must be smaller than the tile size \(64 px\)"),
        (0, 0, 1, "tile size must be at least 1 px"),
        (64, -1, 1, "must not be negative"),
        (64, 8, 0, "stride must be at least 1"),
    ],
)
def test_bad_plan_arguments_are_refused_with_a_reason(tile, overlap, stride, message):
    with pytest.raises(ValueError, match=message):
        plan_tiles(1000, 1000, tile, overlap, stride)


def test_empty_image_is_refused():
    with pytest.raises(ValueError, match=r"empty image \(0x10 px\)"):
        plan_tiles(0, 10, 64, 8)


def test_weights_ramp_only_on_sides_shared_with_a_neighbour():
    h, w, overlap = 300, 700, 40
    tiles = plan_tiles(h, w, 256, overlap)
    for t in tiles:
        wt = blend_weights(t, h, w, overlap)
        assert wt.shape == (t.height, t.width)
        assert (wt > 0).all() and (wt <= 1).all()
        # a side on the image border keeps full weight; a shared side ramps down
        assert np.isclose(wt[t.height // 2, 0], 1.0) == (t.x0 == 0)
        assert np.isclose(wt[t.height // 2, -1], 1.0) == (t.x1 == w)
        assert np.isclose(wt[0, t.width // 2], 1.0) == (t.y0 == 0)
        assert np.isclose(wt[-1, t.width // 2], 1.0) == (t.y1 == h)
        assert wt[t.height // 2, t.width // 2] == 1.0


@pytest.mark.parametrize("h,w,tile,overlap,stride", SHAPES[:4] + SHAPES[5:])
def test_weight_sum_is_positive_everywhere(h, w, tile, overlap, stride):
    tiles = plan_tiles(h, w, tile, overlap, stride)
    total = np.zeros((h, w), dtype=np.float32)
    for t in tiles:
        total[t.y0 : t.y1, t.x0 : t.x1] += blend_weights(t, h, w, overlap)
    assert total.min() > 0


def test_weights_are_a_partition_of_unity_when_overlaps_are_exact():
    # 3 * 64 - 2 * 16 = 160: spans 0-64, 48-112, 96-160 share exactly 16 px.
    h = w = 160
    tiles = plan_tiles(h, w, 64, 16)
    assert len(tiles) == 9
    total = np.zeros((h, w), dtype=np.float64)
    for t in tiles:
        total[t.y0 : t.y1, t.x0 : t.x1] += blend_weights(t, h, w, 16)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def _smooth_field(h, w, channels=2):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack(
        [np.sin(xx / 37.0 + c) * np.cos(yy / 23.0) * 40.0 + 0.01 * xx * (c + 1) for c in range(channels)],
        axis=-1,
    ).astype(np.float32)


@pytest.mark.parametrize("h,w,tile,overlap", [(300, 700, 256, 40), (75, 2000, 512, 64), (200, 200, 64, 20)])
def test_blending_exact_crops_reproduces_the_image(h, w, tile, overlap):
    field = _smooth_field(h, w)
    tiles = plan_tiles(h, w, tile, overlap)
    crops = [c.copy() for c in extract(field, tiles)]
    out = blend(tiles, crops, h, w, overlap)
    assert out.shape == (h, w, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, field, atol=1e-5, rtol=0)


def test_blend_accepts_a_generator():
    h, w = 120, 400
    field = _smooth_field(h, w, channels=3)
    tiles = plan_tiles(h, w, 128, 32)
    out = blend(tiles, (c.copy() for c in extract(field, tiles)), h, w, 32)
    np.testing.assert_allclose(out, field, atol=1e-5, rtol=0)


def test_no_step_at_seams_when_tiles_disagree_by_a_constant():
    h, w, tile, overlap = 40, 1000, 256, 64
    ramp = np.tile(np.arange(w, dtype=np.float32) * 0.01, (h, 1))[..., None]  # 0.01 per column
    tiles = plan_tiles(h, w, tile, overlap)
    assert len(tiles) >= 4
    offsets = [0.004 * (-1) ** i for i in range(len(tiles))]  # neighbours disagree by 0.008
    preds = [crop + off for crop, off in zip(extract(ramp, tiles), offsets)]

    blended = blend(tiles, preds, h, w, overlap)[..., 0]
    step = np.abs(np.diff(blended, axis=1))
    seams = np.zeros(w - 1, dtype=bool)
    for a, b in zip(tiles, tiles[1:]):
        seams[b.x0 - 1 : a.x1] = True  # every column pair inside an overlap
    inside = step[:, ~seams].max()
    assert np.isclose(inside, 0.01, atol=1e-5)
    assert step[:, seams].max() <= inside * 1.05

    # Pasting the tiles side by side instead would leave a visible step of 0.008.
    pasted = np.zeros((h, w), dtype=np.float32)
    for t, p in zip(tiles, preds):
        pasted[t.y0 : t.y1, t.x0 : t.x1] = p[..., 0]
    assert np.abs(np.diff(pasted, axis=1)).max() > inside * 1.5


def test_extract_returns_the_tiles_pixels():
    image = np.arange(50 * 80, dtype=np.float32).reshape(50, 80)
    tiles = plan_tiles(50, 80, 32, 8)
    for t, crop in zip(tiles, extract(image, tiles)):
        assert crop.shape == (t.height, t.width)
        assert crop[0, 0] == image[t.y0, t.x0] and crop[-1, -1] == image[t.y1 - 1, t.x1 - 1]


def test_extract_refuses_a_tile_outside_the_image():
    with pytest.raises(ValueError, match="does not lie inside the 10x10 image"):
        extract(np.zeros((10, 10)), [Tile(0, 0, 11, 5)])


def test_blend_refuses_predictions_that_do_not_fit():
    tiles = plan_tiles(100, 100, 64, 16)
    good = [np.zeros((t.height, t.width, 2), np.float32) for t in tiles]
    wrong = good[:-1] + [np.zeros((10, 10, 2), np.float32)]
    with pytest.raises(ValueError, match=r"prediction of shape \(10, 10, 2\) does not fit tile"):
        blend(tiles, wrong, 100, 100, 16)
    with pytest.raises(ValueError, match="got 3 predictions for 4 tiles"):
        blend(tiles, good[:3], 100, 100, 16)
    with pytest.raises(ValueError, match="more predictions than the 4 tiles"):
        blend(tiles, good + good[:1], 100, 100, 16)


def test_blend_refuses_tiles_that_leave_a_hole():
    tiles = [Tile(0, 0, 10, 10)]
    with pytest.raises(ValueError, match="do not cover the whole image"):
        blend(tiles, [np.ones((10, 10, 1), np.float32)], 10, 20, 4)
