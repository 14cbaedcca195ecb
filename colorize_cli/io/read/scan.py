"""Reading scans: any raster of `formats.py` Pillow can decode becomes one plane of
display-encoded sRGB gray at full resolution (plus alpha), upright, with its metadata. The
network sees only this luminance, so every input colour model is reduced to it here, once.
Inputs are opened read-only and a bad file fails alone with a one-line reason (`ImageError`).

Pages: every page of a multi-page TIFF is read, each with its own tags (`Scan.more_pages`).
Other multi-frame files (an animated GIF, an MPO's second view) give their first frame, with a
note; a PSD gives its composite. 16-bit colour (48/64-bit TIFF and PNG), which Pillow holds at
8 bits, is read at 16 bits through tifffile / imagecodecs.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile

from colorize_cli import color
from colorize_cli.discover import formats
from colorize_cli.io.meta import icc
from colorize_cli.io.meta import tiff_ifd
from colorize_cli.io.read.errors import why_unopenable
from colorize_cli.failures import FileFailure, Kind
from colorize_cli.io.read.grayscale import float_to_16, int32_to_16, luminance8, luminance16, orient, to_uint8
from colorize_cli.io.meta.blocks import add_file_blocks, add_jp2_boxes, add_jpeg_segments, jp2_codestream_cut
from colorize_cli.io.meta.source import Metadata, extract, one_line

MAX_PAGES = 100  # pages of one multi-page TIFF: 500 tiny pages took minutes and gigabytes
READ_FORMATS = tuple(dict.fromkeys(p for plugins in formats.PILLOW_PLUGINS.values() for p in plugins))


class ImageError(FileFailure):
    """A scan that cannot be read; str() is a one-line reason for the manifest, .kind its kind."""

    default_kind = Kind.INPUT_CORRUPT


@dataclass
class Scan:
    """A decoded scan (its first page), upright (EXIF orientation applied), at full resolution."""

    gray: np.ndarray  # (H, W) uint8 or uint16, display-encoded sRGB gray
    alpha: np.ndarray | None  # (H, W), dtype as stored in the file
    bit_depth: int  # 8 or 16: the precision of `gray`
    format: str  # "JPEG", "PNG", "TIFF", ...
    mode: str  # the Pillow mode the file decoded to
    size: tuple[int, int]  # (w, h) of `gray`, i.e. after orientation
    meta: Metadata
    notes: list[str] = field(default_factory=list)  # what reading changed or could not do
    more_pages: list[Scan] = field(default_factory=list)  # pages 2.. of a multi-page TIFF, in order

    @property
    def pages(self) -> list[Scan]:
        return [self, *self.more_pages]


def read_scan(path: str | os.PathLike, max_pixels: int | None = 250_000_000) -> Scan:
    """Decode one scan, every page of it. The pixel count of each page is checked against
    `max_pixels` from the header, before it is decoded; None or 0 means no limit."""
    path = Path(path)
    try:
        fp = open(path, "rb")
    except OSError as err:
        raise input_error(err, "cannot open") from None
    with fp:
        return decode_scan(fp, path.name, os.fstat(fp.fileno()).st_size, max_pixels)


def input_error(err: OSError, doing: str) -> ImageError:
    """The failure of an input file the OS would not give us: one deleted, locked or replaced by
    a folder since discovery fails alone, in words a person understands. `doing` names the
    step ("cannot open", "read error") for any other OS error."""
    if isinstance(err, FileNotFoundError):
        return ImageError("file vanished", Kind.VANISHED)
    if isinstance(err, PermissionError):
        return ImageError("permission denied", Kind.UNREADABLE)
    if isinstance(err, IsADirectoryError):
        return ImageError("is a directory", Kind.UNSUPPORTED)
    return ImageError(f"{doing}: {one_line(err.strerror or err)}", Kind.UNREADABLE)


def decode_scan(fp: BinaryIO, name: str, size: int, max_pixels: int | None = 250_000_000) -> Scan:
    """`read_scan` for a file already open (or already read into memory: the engine decodes
    the very buffer it hashed)."""
    try:
        if size == 0:
            raise ImageError("empty file (0 bytes)", Kind.INPUT_TRUNCATED)
        img = _open_image(fp, name, size)
        with img:
            return _read_pages(img, fp, max_pixels)
    except OSError as err:  # an I/O error on the file itself, not a decoding problem
        raise ImageError(f"read error: {one_line(err.strerror or err)}", Kind.UNREADABLE) from None


def scan_from_image(img: Image.Image, max_pixels: int | None = None) -> Scan:
    """The same reduction as `read_scan` for the current frame of an image already in memory
    (the caller keeps ownership: it is not closed)."""
    return _decode(img, max_pixels, None, None, 0)


def _heif_opener() -> None:
    """HEIF through the optional pillow-heif plugin (`pip install colorize-cli[heif]`)."""
    try:
        from pillow_heif import register_heif_opener  # noqa: PLC0415
    except ImportError:
        return
    register_heif_opener()


def _open_image(fp: BinaryIO, name: str, size: int) -> ImageFile.ImageFile:
    """Image.open without Pillow's process-wide pixel limit, which `read_scan` replaces by its
    own per-call `max_pixels` (changing Image.MAX_IMAGE_PIXELS would leak into other threads).
    When a format recognises the file's signature but cannot open it, that format's error is
    the reason (truncated, unsupported, too large, corrupt: decode_errors.py), not "not an image"."""
    prefix = fp.read(16)
    signature = formats.raster_format(prefix)  # a format's refusal counts only if the bytes are truly its
    refused: tuple[str, Exception] | None = None
    Image.init()
    if formats.raster_format(prefix) == "HEIF" and "HEIF" not in Image.OPEN:
        _heif_opener()
    for fmt in READ_FORMATS:
        if fmt not in Image.OPEN:
            continue
        factory, accept = Image.OPEN[fmt]
        verdict = accept(prefix) if accept else True
        if isinstance(verdict, str) or not verdict:  # a str is Pillow's "looks like, but unsupported"
            continue
        fp.seek(0)
        try:
            return factory(fp, name)
        except Image.DecompressionBombError as err:  # a GIF's frames declare a canvas Pillow refuses at open
            raise ImageError(f"image too large: {one_line(err)}", Kind.TOO_LARGE) from None
        except (SyntaxError, IndexError, TypeError, ValueError, struct.error, EOFError) as err:
            refused = refused or ((fmt, err) if fmt == signature else None)
            continue
        except OSError as err:
            if err.errno is not None:
                raise  # the disk, not the data
            if "truncat" in str(err).lower():
                raise ImageError(f"truncated {fmt}: image file is truncated", Kind.INPUT_TRUNCATED) from None
            refused = refused or ((fmt, err) if fmt == signature else None)
            continue
    if refused is not None:
        raise ImageError(*why_unopenable(*refused, prefix, size))
    document = formats.not_a_raster(prefix, os.path.splitext(name)[1])
    if document:
        raise ImageError(document, Kind.UNSUPPORTED)
    if formats.raster_format(prefix) == "HEIF":
        raise ImageError("HEIF image: install the optional plugin (pip install 'colorize-cli[heif]') to read it",
                         Kind.UNSUPPORTED)
    raise ImageError("not an image (cannot identify image file)")


def _frames(img: Image.Image) -> int:
    try:
        return int(getattr(img, "n_frames", 1))
    except Exception:
        return 1


def _read_pages(img: ImageFile.ImageFile, fp: BinaryIO, max_pixels: int | None) -> Scan:
    fmt = img.format or ""
    frames = _frames(img)
    if fmt != "TIFF":
        scan = _decode(img, max_pixels, fp, None, 0)
        if fmt == "PSD" and frames > 1:
            scan.notes.append("PSD layers not kept: the composite image is colorized")
        elif frames > 1:
            scan.notes.append(f"{frames} frames ({fmt}): only the first is colorized")
        return scan
    try:
        order, big, offsets = tiff_ifd.page_offsets(_reader(fp))
    except (ValueError, struct.error):
        offsets, order, big = [], ">", False
    if frames > MAX_PAGES:  # each page is a network pass at the render size, however small it is
        raise ImageError(f"image too large: {frames} pages, more than the {MAX_PAGES} pages a file this tool colorizes",
                         Kind.TOO_LARGE)
    pages: list[Scan] = []
    total = 0  # pixels of all pages so far: every page counts towards --max-pixels
    for i in range(frames):
        try:
            img.seek(i)
            page = tiff_ifd.read_directory(_reader(fp), offsets[i], order, big) if i < len(offsets) else None
        except (ValueError, struct.error, EOFError) as err:
            raise ImageError(f"page {i + 1} of {frames}: {one_line(err)}", Kind.INPUT_CORRUPT) from None
        total += img.size[0] * img.size[1]
        if max_pixels and total > max_pixels:
            raise ImageError(f"image too large: {frames} pages, {_mpx(total)} Mpx by page {i + 1}, exceed --max-pixels {max_pixels}",
                             Kind.TOO_LARGE)
        try:
            pages.append(_decode(img, max_pixels, fp, page, i))
        except ImageError as err:
            raise ImageError(f"page {i + 1} of {frames}: {err}" if frames > 1 else str(err), err.kind) from None
    first = pages[0]
    first.more_pages = pages[1:]
    return first


def _size(fp: BinaryIO) -> int:
    fp.seek(0, os.SEEK_END)
    return fp.tell()


def _reader(fp: BinaryIO) -> tiff_ifd.Reader:
    def read(offset: int, length: int) -> bytes:
        fp.seek(offset)
        return fp.read(length)

    return read


def _decode(img: Image.Image, max_pixels: int | None, fp: BinaryIO | None, page: tiff_ifd.Directory | None, index: int) -> Scan:
    fmt = "JPEG" if img.format == "MPO" else (img.format or "unknown")
    w, h = img.size
    if max_pixels and w * h > max_pixels:
        raise ImageError(f"image too large: {w}x{h} = {_mpx(w * h)} Mpx exceeds --max-pixels {max_pixels}", Kind.TOO_LARGE)
    notes: list[str] = []
    deep = _decoded_16bit_rgb_as_8(img, fp)  # known from the header and tile layout, which load() discards
    try:
        img.load()
    except Image.DecompressionBombError as err:
        raise ImageError(f"image too large: {one_line(err)}", Kind.TOO_LARGE) from None
    except MemoryError:
        raise ImageError(f"out of memory decoding {w}x{h}", Kind.TOO_LARGE) from None
    except Exception as err:
        if "truncat" in str(err).lower():
            raise ImageError(f"truncated {fmt}: image file is truncated", Kind.INPUT_TRUNCATED) from None
        if fmt == "JPEG2000" and fp is not None and jp2_codestream_cut(_reader(fp), _size(fp)):
            raise ImageError(f"truncated {fmt}: the file ends before its codestream does ({w}x{h} declared)",
                             Kind.INPUT_TRUNCATED) from None
        raise ImageError(*why_unopenable(fmt, err, b"", 0)) from None  # corrupt, unsupported or too large
    meta = extract(img, page)  # after load: a PNG may keep its eXIf chunk after the pixel data
    meta.source_format = fmt
    if fmt == "JPEG" and fp is not None:
        fp.seek(0)
        add_jpeg_segments(meta, fp.read())
    if fmt == "JPEG2000" and fp is not None:
        add_jp2_boxes(meta, _reader(fp))
        meta.orientation = 1  # JPEG 2000 has no orientation: an EXIF one is not applied by viewers
    if fp is not None:
        add_file_blocks(meta, fmt, _reader(fp))  # PNG chunks, PNM comments, GIF XMP/ICC, PSD resources
    try:
        wide = _read_16bit_colour(fp, fmt, index) if deep and fp is not None else None
        if wide is not None:
            gray, alpha, depth = _wide_to_gray(wide, meta, notes)
        else:
            if deep:
                notes.append("16-bit colour data read at 8 bits (no 16-bit decoder for this file)")
            gray, alpha, depth = _to_gray(img, meta, notes)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"out of memory decoding {w}x{h}", Kind.TOO_LARGE) from None
    except Exception as err:
        raise ImageError(f"cannot convert {img.mode} pixels: {one_line(err)}", Kind.UNSUPPORTED) from None
    gray = _own(orient(gray, meta.orientation))
    alpha = _own(orient(alpha, meta.orientation)) if alpha is not None else None
    return Scan(gray, alpha, depth, fmt, img.mode, (gray.shape[1], gray.shape[0]), meta, notes)


def _own(a: np.ndarray) -> np.ndarray:
    """A writable, contiguous array (Pillow hands out read-only views of its buffers)."""
    return np.require(a, requirements=["C_CONTIGUOUS", "WRITEABLE", "OWNDATA"])


def _mpx(pixels: int) -> str:
    mpx = pixels / 1e6
    return f"{mpx:.0f}" if mpx >= 10 else f"{mpx:.2g}"


def _decoded_16bit_rgb_as_8(img: Image.Image, fp: BinaryIO | None) -> bool:
    if img.mode not in ("RGB", "RGBA", "RGBX"):
        return False
    if img.format == "JPEG2000" and fp is not None:
        return _jp2_bits(fp) > 8
    if img.format == "TIFF":  # Pillow's tile says ";16" for chunky data only, not for planar planes
        try:
            bits = img.tag_v2.get(258)
            if bits:
                return max(bits if isinstance(bits, tuple) else (bits,)) > 8
        except Exception:
            pass
    try:
        return any(";16" in str(tile.args) for tile in img.tile or ())
    except Exception:
        return False


def _jp2_bits(fp: BinaryIO) -> int:
    """Bits per component of a JPEG 2000 file, from its `ihdr` box or codestream SIZ marker."""
    fp.seek(0)
    head = fp.read(512)
    at = head.find(b"ihdr")
    if at >= 0 and len(head) > at + 14:
        return (head[at + 14] & 0x7F) + 1
    if head[:4] == b"\xff\x4f\xff\x51" and len(head) > 42:
        return (head[42] & 0x7F) + 1
    return 8


def _read_16bit_colour(fp: BinaryIO, fmt: str, index: int) -> np.ndarray | None:
    """(H, W, 3|4) uint16 of a 48/64-bit TIFF page, PNG or JPEG 2000, by a decoder that holds 16 bits."""
    fp.seek(0)
    if fmt in ("PNG", "JPEG2000"):
        import imagecodecs  # noqa: PLC0415

        decode = imagecodecs.png_decode if fmt == "PNG" else imagecodecs.jpeg2k_decode
        pixels = decode(fp.read())
    elif fmt == "TIFF":
        import tifffile  # noqa: PLC0415

        with tifffile.TiffFile(fp) as tif:
            page = tif.pages[index]
            pixels = page.asarray()
            if pixels.ndim == 3 and page.axes.startswith("S"):  # planar (separate) samples: (S, H, W)
                pixels = np.moveaxis(pixels, 0, -1)
    else:
        return None
    if pixels.dtype != np.uint16 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        return None
    return pixels


def _wide_to_gray(rgb: np.ndarray, meta: Metadata, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None, int]:
    name = icc.describe_icc(meta.icc_profile)
    if meta.icc_color_space == "RGB" and not name.lower().startswith("srgb"):
        notes.append(f"RGB ICC profile '{name or 'embedded'}' not applied: LittleCMS here converts 8-bit data only")
    alpha = np.ascontiguousarray(rgb[..., 3]) if rgb.shape[2] == 4 else None
    return luminance16(rgb[..., :3]), alpha, 16


def _to_gray(img: Image.Image, meta: Metadata, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None, int]:
    """The scan's luminance as display-encoded sRGB gray, its alpha, and its bit depth."""
    mode = img.mode
    space = meta.icc_color_space
    palette_rgb = space == "RGB" and img.format == "GIF"  # a GIF's gray is RGB palette entries, in its profile
    if mode in ("1", "L", "LA", "La") and not palette_rgb:
        base = img.convert("LA") if mode == "La" else img
        gray = np.asarray(base.getchannel("L") if mode in ("LA", "La") else base.convert("L"))
        alpha = np.asarray(base.getchannel("A")) if mode in ("LA", "La") else None
        return icc.gray_to_srgb(gray, meta.icc_profile, notes), alpha, 8
    if mode.startswith("I;16"):
        gray = np.asarray(img).astype(np.uint16)
        return icc.gray_to_srgb(gray, meta.icc_profile, notes), None, 16
    if mode == "I":
        return int32_to_16(np.asarray(img)), None, 16
    if mode == "F":
        return float_to_16(np.asarray(img)), None, 16
    if mode == "LAB":
        lightness = np.asarray(img.getchannel("L")).astype(np.float32) * np.float32(100.0 / 255.0)
        return to_uint8(color.lightness_to_gray(lightness)), None, 8
    if space == "GRAY":
        notes.append(f"gray ICC profile ignored on {mode} pixels")
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    elif mode == "CMYK":
        img = icc.cmyk_to_srgb(img, meta.icc_profile, notes)
    elif mode not in ("RGB", "RGBA", "RGBX"):
        img = img.convert("RGB")  # YCbCr, HSV, ...
    if space == "RGB" and (mode in ("RGB", "RGBA", "RGBX") or palette_rgb or mode in ("P", "PA")):
        img = icc.rgb_to_srgb(img, meta.icc_profile, notes)
    rgb = np.asarray(img)
    alpha = np.ascontiguousarray(rgb[..., 3]) if img.mode == "RGBA" else None
    return luminance8(rgb[..., :3]), alpha, 8
