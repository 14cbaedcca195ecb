"""Review thumbnails: two small JPEGs per scan, taken while the scan is still in memory.

Why here and not later: the engine hands every image to :class:`ThumbnailWriter` during the run,
so a 2 GB TIFF is never decoded a second time for the review sheet. The writer also returns the
review measures of the result (:mod:`.measures`), which the engine stores in the manifest.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePath

import numpy as np
from PIL import Image

from colorize_cli.io.fsutil import atomic_output
from colorize_cli.io.read.grayscale import to_8bit
from colorize_cli.report.measures import Border, review_measures

THUMBS_DIR = PurePath("report", "thumbs")  # relative to the output root (and to report.html)
THUMB_LONG_SIDE = 256
THUMB_QUALITY = 80
ORIGINAL_SUFFIX = ".o.jpg"
COLOR_SUFFIX = ".c.jpg"

_KEY_CHARS = 32  # hex digits of sha256 kept: 128 bits, collision-free for any real archive
_STRIP_PIXELS = 8_000_000  # pre-reduce big scans in strips of about this many pixels


def thumb_key(rel: str | PurePath) -> str:
    """The thumbnail base name for an input: hex only, so no name can escape the thumbs folder,
    and derived from the manifest's ``input`` string so the report finds it without a lookup."""
    text = rel.as_posix() if isinstance(rel, PurePath) else str(rel)
    # surrogatepass: undecodable Linux file names arrive as lone surrogates and must still hash
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_KEY_CHARS]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """8-bit copy of an 8- or 16-bit image, 16-bit rounded as every 8-bit output is (imaging.to_8bit)."""
    if image.dtype.kind == "u" and image.dtype.itemsize == 1:
        return image
    if image.dtype.kind == "u" and image.dtype.itemsize == 2:  # either byte order (TIFF data)
        return to_8bit(image)
    raise TypeError(f"thumbnail input must be uint8 or uint16, got {image.dtype}")


def shrink(image: np.ndarray, long_side: int = THUMB_LONG_SIDE) -> np.ndarray:
    """Downscale an (H, W) or (H, W, 3) uint8/uint16 image to at most ``long_side``, as uint8.

    Big scans are first box-reduced by an integer factor with Pillow's ``reduce``, a strip of rows
    at a time, so a 16-bit 20,000 px scan never needs a full-size 8-bit copy; the last step is a
    Lanczos resize from about twice the target size. Small images are not enlarged.
    """
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"thumbnail input must be (H, W) or (H, W, 3), got shape {image.shape}")
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"thumbnail input is empty: shape {image.shape}")
    factor = max(1, max(h, w) // (2 * long_side))
    if factor > 1:
        rows = factor * max(1, _STRIP_PIXELS // (w * factor))
        strips = [
            np.asarray(Image.fromarray(to_uint8(image[top : top + rows])).reduce(factor))
            for top in range(0, h, rows)
        ]
        small = Image.fromarray(np.concatenate(strips, axis=0))
    else:
        small = Image.fromarray(to_uint8(image))
    small.thumbnail((long_side, long_side), Image.Resampling.LANCZOS, reducing_gap=None)
    return np.asarray(small)


class ThumbnailWriter:
    """Writes the review thumbnails of one run into ``<out>/report/thumbs/``.

    Stateless apart from its settings, so the engine's writer threads can share one. JPEGs appear
    atomically (temp file in the same folder, then os.replace) but are not fsync'ed: a thumbnail
    lost in a power cut costs nothing, an fsync per scan costs real time over 100,000 files.
    """

    def __init__(
        self,
        out_root: str | os.PathLike[str],
        long_side: int = THUMB_LONG_SIDE,
        quality: int = THUMB_QUALITY,
    ) -> None:
        self.directory = Path(out_root) / THUMBS_DIR
        self.long_side = long_side
        self.quality = quality
        self.directory.mkdir(parents=True, exist_ok=True)

    def paths(self, rel: str | PurePath) -> tuple[Path, Path]:
        """(original, colorized) thumbnail paths for an input."""
        key = thumb_key(rel)
        return self.directory / (key + ORIGINAL_SUFFIX), self.directory / (key + COLOR_SUFFIX)

    def add(
        self,
        rel: str | PurePath,
        original_gray: np.ndarray,
        result_rgb: np.ndarray | None,
        tiles: tuple[list[Border], list[Border]] | None = None,
    ) -> dict[str, float]:
        """Write the thumbnails of one scan; return the measures to store as ``FileRecord.review``.

        ``result_rgb`` may be None (the scan decoded but could not be colorized): only the
        original is kept and no measures are returned. ``tiles``: where the tiles of a tiled
        scan met (``measures.tile_borders``), for the seam measure.
        """
        if original_gray.ndim != 2:
            raise ValueError(f"original must be a gray (H, W) image, got shape {original_gray.shape}")
        if result_rgb is not None and result_rgb.shape != (*original_gray.shape, 3):
            raise ValueError(
                f"result shape {result_rgb.shape} does not match original {original_gray.shape} "
                "(expected (H, W, 3))"
            )
        orig_path, color_path = self.paths(rel)
        gray = shrink(original_gray, self.long_side)
        rgb = None if result_rgb is None else shrink(result_rgb, self.long_side)
        self._save(gray, orig_path)
        if rgb is None:
            return {}
        self._save(rgb, color_path)
        return review_measures(gray, rgb, tiles)

    def _save(self, image: np.ndarray, dest: Path) -> None:
        with atomic_output(dest, durable=False) as f:  # cheap to remake: no fsync
            Image.fromarray(image).save(f, format="JPEG", quality=self.quality)
