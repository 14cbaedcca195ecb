"""The network's part of colorizing one scan, in explicit steps.

    gray (full res) --resize--> working L* --tiles--> network --> a*b* per tile --blend--> a*b* (working res)
                                                                        |
    gray (full res) + a*b* --upsample, merge onto the original L*--> RGB (full res)   [merge.colorize_full_res]

Only the small working copy meets the network and only chroma comes back, so the output has
exactly the input's detail and luminance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from colorize_cli.color import gray_to_lightness
from colorize_cli.merge.full_res import colorize_full_res, merge_device
from colorize_cli.failures import is_out_of_memory
from colorize_cli.inference.devices import precision, release_cached_memory
from colorize_cli.models import ColorModel
from colorize_cli.models.spec import model_spec
from colorize_cli.settings import ColorSettings
from colorize_cli.inference.tiling import Tile, blend, extract, plan_tiles
from colorize_cli.inference.whole import predict_whole
from colorize_cli.inference.coherence import ICON_SIDE, anchor_to_icon, hold_to_thumbnail, resize, thumbnail_shape, upsample_guided


def working_shape(h: int, w: int, render_size: int) -> tuple[int, int]:
    """Size the network sees: the long side at render_size, aspect kept. A very wide or tall scan
    keeps its short side at render_size / 2 at least (up to its own size) and is tiled instead of
    being squashed into a sliver."""
    scale = render_size / max(h, w)
    short = min(h, w)
    scale = max(scale, min(1.0, (render_size / 2) / short))
    return max(1, round(h * scale)), max(1, round(w * scale))


def working_lightness(gray: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize the full-resolution gray (uint8 "L" or uint16 "I;16", Pillow's C resampler, no
    float copy of the full image) to the working shape, then take L*."""
    peak = 255.0 if gray.dtype == np.uint8 else 65535.0
    img = Image.fromarray(gray)
    if (img.height, img.width) != shape:
        # Pillow's reduce() has no 16-bit mode: only 8-bit gray takes the fast pre-reduction
        img = img.resize((shape[1], shape[0]), Image.BILINEAR, reducing_gap=3.0 if img.mode == "L" else None)
    return gray_to_lightness(np.asarray(img, dtype=np.float32) / peak)


@dataclass
class Piece:
    """One network input: a tile of one scan's working L*."""

    tile: Tile
    lightness: np.ndarray  # (th, tw) float32 L*


def cut(lightness: np.ndarray, color: ColorSettings) -> list[Piece]:
    h, w = lightness.shape
    tiles = plan_tiles(h, w, color.tile_size, color.tile_overlap, stride=1) if max(h, w) > color.tile_size else [Tile(0, 0, h, w)]
    return [Piece(t, arr) for t, arr in zip(tiles, extract(lightness, tiles))]


def assemble(pieces: list[Piece], predictions: list[np.ndarray], shape: tuple[int, int], overlap: int) -> np.ndarray:
    """Blend per-tile a*b* (each at its tile's size) into one working-resolution map."""
    if len(pieces) == 1:
        return predictions[0]
    return blend([p.tile for p in pieces], predictions, shape[0], shape[1], overlap)


class TileTooLarge(RuntimeError):
    """A single tile does not fit in the device's memory."""


class Predictor:
    """Runs batches of equally shaped L* tiles through a model; returns a*b* at tile size.

    On an out-of-memory error the batch is split in halves and retried; a single tile that
    still does not fit raises TileTooLarge so the caller can re-tile smaller."""

    def __init__(self, model: ColorModel, device: torch.device, dtype: torch.dtype | None) -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self.spec = model_spec(model)  # what the model takes: fixed square or free size, tiles or not
        self.stride = self.spec.multiple_of

    def bucket(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """The padded shape a tile runs at; tiles of one bucket can share a batch, and give the
        same a*b* batched as alone (each is padded the same way either way)."""
        h, w = shape[:2]
        return h + (-h) % self.stride, w + (-w) % self.stride

    def _forward(self, tiles: list[np.ndarray], flip: bool = False) -> list[np.ndarray]:
        ph, pw = self.bucket(tiles[0].shape)
        padded = np.empty((len(tiles), 1, ph, pw), np.float32)
        for i, t in enumerate(tiles):  # reflect-pad each tile to the bucket (edge-pad a too-thin one)
            h, w = t.shape
            mode = "reflect" if ph - h < h and pw - w < w else "edge"
            padded[i, 0] = np.pad(t, ((0, ph - h), (0, pw - w)), mode=mode)
        x = torch.from_numpy(padded)
        if self.device.type == "cuda":
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), precision(self.device, self.dtype):
            if flip:  # the mirror image rides in the same batch; its a*b* is mirrored back and averaged
                both = self.model.predict_ab(torch.cat([x, x.flip(-1)])).float()
                ab = 0.5 * (both[: len(tiles)] + both[len(tiles) :].flip(-1))
            else:
                ab = self.model.predict_ab(x).float()
        scale = ph / ab.shape[-2]
        out = []
        for i, t in enumerate(tiles):
            h, w = t.shape
            crop = ab[i : i + 1, :, : max(1, round(h / scale)), : max(1, round(w / scale))]
            crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
            out.append(crop[0].permute(1, 2, 0).cpu().numpy())
        return out

    def predict(self, tiles: list[np.ndarray], flip: bool = False) -> list[np.ndarray]:
        """a*b* per tile; ``flip`` averages with the network's answer for the mirrored tile (--tta)."""
        try:
            return self._forward(tiles, flip)
        except Exception as err:  # noqa: BLE001 - only memory errors are handled here
            if not is_out_of_memory(err):
                raise
            release_cached_memory(self.device)
            if len(tiles) == 1:
                raise TileTooLarge(f"a {tiles[0].shape[1]}x{tiles[0].shape[0]} tile does not fit in {self.device} memory") from err
            half = len(tiles) // 2
            return self.predict(tiles[:half], flip) + self.predict(tiles[half:], flip)


def predict_many(predictor: Predictor, arrays: list[np.ndarray], flip: bool = False) -> list[np.ndarray]:
    """a*b* for working L* arrays of any shapes; those that pad to the same bucket share a
    network call (and give what they would give alone)."""
    out: list[np.ndarray] = [np.empty(0)] * len(arrays)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(predictor.bucket(a.shape), []).append(i)
    for idx in groups.values():
        for i, ab in zip(idx, predictor.predict([arrays[i] for i in idx], flip)):
            out[i] = ab
    return out


def hold_sigma(shape: tuple[int, int], thumb_side: int) -> float:
    """Scale (working px) above which the thumbnail decides the colour: one thumbnail pixel."""
    return max(1.0, max(shape) / thumb_side)


def thumbnail_side(tile_size: int) -> int:
    """Long side of the whole-scan thumbnail: half a tile, so that the network sees the whole
    scan much as it sees an ordinary photograph at its render size."""
    return max(32, tile_size // 2)


def predict_thumbnail(predictor: Predictor, lightness: np.ndarray, long_side: int, flip: bool = False) -> np.ndarray:
    """a*b* of the whole working image shrunk to ``long_side`` px (one network call, halved again
    while it does not fit in the device's memory), brought back to the working size along the
    working L*'s edges."""
    while True:
        thumb = resize(lightness, thumbnail_shape(*lightness.shape, long_side))
        try:
            ab = predict_many(predictor, [thumb], flip)[0]
            return upsample_guided(ab, thumb, lightness)
        except TileTooLarge:
            if long_side <= 64:
                raise
            long_side //= 2


def predict_story(predictor: Predictor, lightness: np.ndarray, side: int, flip: bool = False) -> np.ndarray:
    """The whole scan's colour story at working size: the ``side``-px thumbnail's a*b*, its
    lowest frequencies anchored to an icon's (``coherence.anchor_to_icon``) when the thumbnail
    is larger than the icon. Two small network calls."""
    thumb = predict_thumbnail(predictor, lightness, side, flip)
    if side <= ICON_SIDE:
        return thumb
    icon = predict_thumbnail(predictor, lightness, ICON_SIDE, flip)
    return anchor_to_icon(thumb, icon, hold_sigma(lightness.shape, ICON_SIDE))


def predict_working_ab(predictor: Predictor, lightness: np.ndarray, color: ColorSettings, batch_size: int, hold: bool = True) -> np.ndarray:
    """a*b* for one scan's working L*, tiled and batched; re-tiles smaller when a tile won't fit.

    A tiled scan is held at low frequency to a whole-scan thumbnail (``coherence``), so one scan
    gets one colour story wherever the tile edges fall; ``hold=False`` gives the raw blend."""
    if predictor.spec.fixed_size is not None:  # a model that sees the whole picture (DDColor): never tiled
        return predict_whole(predictor, lightness, predictor.spec.square(color.render_size), color.tta)
    tile_size = color.tile_size
    while True:
        settings = ColorSettings(**{**color.__dict__, "tile_size": tile_size})
        pieces = cut(lightness, settings)
        try:
            preds: list[np.ndarray] = []
            for i in range(0, len(pieces), batch_size):
                preds += predict_many(predictor, [p.lightness for p in pieces[i : i + batch_size]], color.tta)
            ab = assemble(pieces, preds, lightness.shape, settings.tile_overlap)
            if hold and len(pieces) > 1:
                side = thumbnail_side(tile_size)
                story = predict_story(predictor, lightness, side, color.tta)
                ab = hold_to_thumbnail(ab, story, hold_sigma(lightness.shape, side))
            return ab
        except TileTooLarge:
            if tile_size <= 2 * max(64, color.tile_overlap):
                raise
            tile_size //= 2


def predict_scans(predictor: Predictor, scans: list[np.ndarray], color: ColorSettings, batch_size: int) -> list[np.ndarray | Exception]:
    """a*b* (or the error) for each of a batch of scans' working L*. Untiled scans of one bucket
    share network calls; a tiled scan, or any scan after a failed shared call, goes alone, so
    a bad scan fails by itself."""
    out: list[np.ndarray | Exception] = [RuntimeError("not predicted")] * len(scans)
    small = [i for i, a in enumerate(scans) if max(a.shape) <= color.tile_size and predictor.spec.fixed_size is None]
    if len(small) > 1:
        try:
            for i, ab in zip(small, predict_many(predictor, [scans[i] for i in small], color.tta)):
                out[i] = ab
        except Exception:  # noqa: BLE001 - retried one scan at a time below
            pass
    for i, a in enumerate(scans):
        if isinstance(out[i], Exception):
            try:
                out[i] = predict_working_ab(predictor, a, color, batch_size)
            except Exception as err:  # noqa: BLE001 - the caller records it for this scan alone
                out[i] = err
    return out


def colorize_gray(
    gray: np.ndarray,
    predictor: Predictor,
    color: ColorSettings,
    render_size: int,
    batch_size: int = 8,
    out_dtype: type = np.uint8,
    hold: bool = True,
) -> np.ndarray:
    """Colorize one full-resolution gray scan (H, W) uint8/uint16 -> RGB (H, W, 3) of out_dtype."""
    lightness = working_lightness(gray, working_shape(*gray.shape, render_size))
    ab = predict_working_ab(predictor, lightness, color, batch_size, hold)
    return colorize_full_res(gray, ab, color.saturation, upsample=color.upsample, out_dtype=out_dtype, lightness_small=lightness,
                             device=merge_device(predictor.device))
