"""Writing results: RGB(A) pages with the metadata `carry.py` decides, atomically (a hidden
temp file in the output folder, fsync, os.replace: a crash or a full disk never leaves a
half-written file under the final name).

Which library writes which format: JPEG, WebP and BMP by Pillow (`write_pillow`), JPEG 2000
by Pillow at 8 bits and imagecodecs at 16 (`write_jp2`), PNG by our own encoder (`write_png`:
16-bit colour with every chunk), TIFF by our IFD layout with imagecodecs' LZW (`write_tiff`).
16 bits are kept for PNG, TIFF and JPEG 2000.

Pages: a TIFF holds every page in one file. A format that holds one image gets one file a
page: page 1 under the planned name, page N beside it as `<stem>_page<N><ext>`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from colorize_cli.discover import formats
from colorize_cli.io.write import jp2 as write_jp2
from colorize_cli.io.write import pillow as write_pillow
from colorize_cli.io.write import png as write_png
from colorize_cli.io.write import tiff as write_tiff
from colorize_cli.io.meta.carry import Carried, carry
from colorize_cli.failures import FileFailure, Kind
from colorize_cli.failures import is_disk_full
from colorize_cli.io.fsutil import atomic_output
from colorize_cli.io.read.grayscale import match_depth, to_8bit
from colorize_cli.io.meta.icc import into_input_rgb_space
from colorize_cli.io.meta.source import Metadata, one_line
from colorize_cli.discover.outnames import page_path
from colorize_cli.io.meta.provenance import Provenance

WRITE_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "JPEG2000")
_ALPHA_FORMATS = ("PNG", "TIFF", "WEBP")
_WEBP_MAX_SIDE = 16383
_SPELLINGS = {"JPG": "JPEG", "TIF": "TIFF", "JP2": "JPEG2000"}


class WriteError(FileFailure):
    """An output that could not be written; str() is a one-line reason. No file is left behind."""

    default_kind = Kind.OUTPUT_SIDE


@dataclass
class Page:
    """One colorized page: (H, W, 3) uint8/uint16 RGB, optional alpha, and its own metadata."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    meta: Metadata


def write_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    fmt: str,
    quality: int,
    meta: Metadata,
    keep_times_from: str | os.PathLike | None = None,
    *,
    model_name: str = "",
    origin: Provenance | None = None,
    tiff_compression: str = "lzw",
) -> list[str]:
    """Write one image as `fmt`, atomically; returns notes for the manifest."""
    return write_pages(path, [Page(rgb, alpha, meta)], fmt, quality, keep_times_from, model_name=model_name, origin=origin,
                       tiff_compression=tiff_compression)[0]


def write_pages(
    path: str | os.PathLike,
    pages: list[Page],
    fmt: str,
    quality: int,
    keep_times_from: str | os.PathLike | None = None,
    *,
    model_name: str = "",
    origin: Provenance | None = None,
    tiff_compression: str = "lzw",
) -> tuple[list[str], list[Path]]:
    """Write every page as `fmt`, atomically; returns notes for the manifest and the files
    written (one for TIFF, one a page otherwise). A failing page fails the whole call, with a
    reason naming the page, and leaves none of its files behind. `tiff_compression`: lzw,
    deflate or none (TIFF only)."""
    fmt = _SPELLINGS.get(fmt.upper(), fmt.upper())
    if fmt not in WRITE_FORMATS:
        raise WriteError(f"unsupported output format {fmt}", Kind.UNSUPPORTED)
    if tiff_compression not in write_tiff.COMPRESSIONS:
        raise WriteError(f"unknown TIFF compression {tiff_compression!r}: use {', '.join(write_tiff.COMPRESSIONS)}", Kind.UNSUPPORTED)
    origin = origin or Provenance(model_name=model_name)
    many = len(pages) > 1
    notes: list[str] = []
    prepared: list[tuple[np.ndarray, Carried]] = []
    for i, page in enumerate(pages):
        try:
            pixels, carried = _prepare(page, fmt, origin, notes)
        except WriteError as err:
            raise WriteError(f"page {i + 1} of {len(pages)}: {err}" if many else str(err), err.kind) from None
        if fmt == "TIFF" and i and not page.meta.xmp:
            carried.xmp = None  # the file's XMP is page 1's; exiftool calls XMP on a later page non-standard
        prepared.append((pixels, carried))
    times = _times(keep_times_from, notes)
    path = Path(path)
    if fmt == "TIFF":
        _atomic_write(path, lambda fp: write_tiff.encode_tiff(fp, prepared, tiff_compression), times)
        return _unique(notes), [path]
    written: list[Path] = []
    for i, (pixels, carried) in enumerate(prepared):
        target = page_path(path, i)
        try:
            _atomic_write(target, lambda fp, px=pixels, c=carried: _encode_one(fp, px, fmt, quality, c), times)
        except WriteError as err:
            for done in written:
                done.unlink(missing_ok=True)
            raise WriteError(f"page {i + 1} of {len(pages)}: {err}" if many else str(err), err.kind) from None
        written.append(target)
    if many:
        notes.append(f"{len(pages)} pages written one file each ({fmt} holds one image): "
                     + ", ".join(p.name for p in written))
    return _unique(notes), written


def _prepare(page: Page, fmt: str, origin: Provenance, notes: list[str]) -> tuple[np.ndarray, Carried]:
    rgb, alpha = page.rgb, page.alpha
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype not in (np.uint8, np.uint16):
        raise WriteError(f"bad pixel array {rgb.dtype} {rgb.shape}: need (H, W, 3) uint8 or uint16", Kind.INTERNAL)
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        raise WriteError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}", Kind.INTERNAL)
    if rgb.dtype == np.uint16 and fmt not in formats.SIXTEEN_BIT:
        rgb = to_8bit(rgb)
        notes.append(f"16-bit reduced to 8 bits: {fmt} is 8-bit only")
    if alpha is not None and fmt not in _ALPHA_FORMATS:
        notes.append(f"alpha dropped: {fmt} has no alpha")
        alpha = None
    pixels = rgb if alpha is None else np.dstack([rgb, match_depth(alpha, rgb.dtype)])
    h, w = rgb.shape[:2]
    if fmt == "WEBP" and max(w, h) > _WEBP_MAX_SIDE:
        raise WriteError(f"image too large for WebP: {w}x{h} (max {_WEBP_MAX_SIDE} px a side)", Kind.TOO_LARGE)
    profile = page.meta.icc_profile
    if fmt in ("BMP", "JPEG2000"):  # no ICC written (BMP) or only enumerated sRGB (Pillow's JP2)
        if page.meta.icc_color_space == "RGB" and fmt == "JPEG2000":
            notes.append("RGB ICC profile not kept: JPEG 2000 is written as sRGB")
        profile = None
    pixels, icc = into_input_rgb_space(pixels, profile, notes)
    carried = carry(page.meta, fmt, w, h, origin.model_name, icc, origin)
    notes += carried.notes
    return pixels, carried


def _encode_one(fp: BinaryIO, pixels: np.ndarray, fmt: str, quality: int, carried: Carried) -> None:
    if fmt == "PNG":
        write_png.encode_png(fp, pixels, carried)
    elif fmt == "JPEG2000":
        write_jp2.encode_jp2(fp, pixels, carried)
    else:
        write_pillow.encode_pillow(fp, pixels, fmt, quality, carried)


def _unique(notes: list[str]) -> list[str]:
    return list(dict.fromkeys(notes))


def _times(keep_times_from: str | os.PathLike | None, notes: list[str]) -> tuple[int, int] | None:
    if keep_times_from is None:
        return None
    try:
        st = os.stat(keep_times_from)
    except OSError as err:
        notes.append(f"times not kept: {one_line(err.strerror or err)}")
        return None
    return st.st_atime_ns, st.st_mtime_ns


def _atomic_write(path: Path, encode: Callable[[BinaryIO], None], times: tuple[int, int] | None) -> None:
    """The final name only ever shows a complete file (fsutil.atomic_output); on failure the
    temp file is gone and a WriteError says why."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, times_ns=times) as fp:
            encode(fp)
    except WriteError:
        raise
    except Exception as err:
        raise WriteError(_write_reason(err), _write_kind(err)) from err


def _write_kind(err: Exception) -> Kind:
    if is_disk_full(err):
        return Kind.DISK_FULL
    return Kind.OUTPUT_SIDE if isinstance(err, OSError) else Kind.INTERNAL


def _write_reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.errno is not None:
        reasons = {
            errno.ENOSPC: "disk full",
            errno.EDQUOT: "disk quota exceeded",
            errno.EACCES: "output folder not writable",
            errno.EPERM: "output folder not writable",
            errno.EROFS: "output folder not writable (read-only file system)",
            errno.ENAMETOOLONG: "output file name too long",
            errno.ENOENT: "output folder vanished",
        }
        return reasons.get(err.errno, f"write failed: {one_line(err.strerror or err)}")
    return f"encode failed: {one_line(err)}"
