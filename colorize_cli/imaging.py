"""Reading scans and writing results.

`read_scan` turns any scan Pillow can decode into one plane of display-encoded sRGB gray at
full resolution (plus alpha), upright, with its metadata: the network sees only this luminance,
so every input colour model is reduced to it here, once. Inputs are opened read-only and a bad
file fails alone with a one-line reason (`ImageError`).

`write_image` writes RGB(A) atomically: a hidden temp file in the output folder, fsync, then
os.replace, so a crash or a full disk never leaves a half-written file under the final name.
Pillow cannot hold 16-bit RGB, so PNG and TIFF are encoded here (zlib + numpy filters); that
one path serves both bit depths, so 8- and 16-bit outputs carry metadata identically.
"""

from __future__ import annotations

import errno
import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
import piexif
from PIL import Image, ImageCms, ImageFile

from colorize_cli import color
from colorize_cli.fsutil import atomic_output
from colorize_cli.metadata import Carried, Metadata, carry, describe_icc, extract, one_line, photoshop_irb
from colorize_cli.metadata import rational, sort_ifd_entries

# Formats a scan may come in. Others (EPS would start Ghostscript, say) are refused outright.
READ_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "GIF", "JPEG2000", "PPM", "MPO")
WRITE_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")
TIFF_COMPRESSIONS = ("deflate", "none")
_ALPHA_FORMATS = ("PNG", "TIFF", "WEBP")
_WEBP_MAX_SIDE = 16383


class ImageError(Exception):
    """A scan that cannot be read; str() is a one-line reason for the manifest."""


class WriteError(Exception):
    """An output that could not be written; str() is a one-line reason. No file is left behind."""


@dataclass
class Scan:
    """A decoded scan, upright (EXIF orientation applied), at full resolution."""

    gray: np.ndarray  # (H, W) uint8 or uint16, display-encoded sRGB gray
    alpha: np.ndarray | None  # (H, W), dtype as stored in the file
    bit_depth: int  # 8 or 16: the precision of `gray`
    format: str  # "JPEG", "PNG", "TIFF", ...
    mode: str  # the Pillow mode the file decoded to
    size: tuple[int, int]  # (w, h) of `gray`, i.e. after orientation
    meta: Metadata
    notes: list[str] = field(default_factory=list)  # what reading changed or could not do


# ------------------------------------------------------------------------------------- reading


def read_scan(path: str | os.PathLike, max_pixels: int | None = 250_000_000) -> Scan:
    """Decode one scan. The pixel count is checked against `max_pixels` from the header,
    before anything is decoded; None or 0 means no limit."""
    path = Path(path)
    try:
        fp = open(path, "rb")
    except FileNotFoundError:
        raise ImageError("file vanished") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except IsADirectoryError:
        raise ImageError("is a directory") from None
    except OSError as err:
        raise ImageError(f"cannot open: {one_line(err.strerror or err)}") from None
    with fp:
        try:
            if os.fstat(fp.fileno()).st_size == 0:
                raise ImageError("empty file (0 bytes)")
            img = _open_image(fp, path.name)
        except OSError as err:  # an I/O error on the file itself, not a decoding problem
            raise ImageError(f"read error: {one_line(err.strerror or err)}") from None
        with img:
            return _decode(img, max_pixels)


def scan_from_image(img: Image.Image, max_pixels: int | None = None) -> Scan:
    """The same reduction as `read_scan`, for an image already in memory (the caller keeps
    ownership: it is not closed)."""
    return _decode(img, max_pixels)


def _open_image(fp: BinaryIO, name: str) -> ImageFile.ImageFile:
    """Image.open without Pillow's process-wide pixel limit, which `read_scan` replaces by its
    own per-call `max_pixels` (changing Image.MAX_IMAGE_PIXELS would leak into other threads)."""
    prefix = fp.read(16)
    Image.init()
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
        except (SyntaxError, IndexError, TypeError, ValueError, struct.error, EOFError):
            continue
        except OSError as err:
            if err.errno is not None:
                raise  # the disk, not the data
            if "truncat" in str(err).lower():
                raise ImageError(f"truncated {fmt}: image file is truncated") from None
            continue
    raise ImageError("not an image (cannot identify image file)")


def _decode(img: Image.Image, max_pixels: int | None) -> Scan:
    fmt = "JPEG" if img.format == "MPO" else (img.format or "unknown")
    w, h = img.size
    if max_pixels and w * h > max_pixels:
        raise ImageError(f"image too large: {w}x{h} = {_mpx(w * h)} Mpx exceeds --max-pixels {max_pixels}")
    notes: list[str] = []
    try:
        frames = getattr(img, "n_frames", 1)
    except Exception:
        frames = 1
    if frames > 1:
        notes.append(f"{frames} frames/pages: only the first is used")
    if _decoded_16bit_rgb_as_8(img):  # known from the tile layout, which load() discards
        notes.append("16-bit colour data read at 8 bits (Pillow cannot hold 16-bit RGB)")
    try:
        img.load()
    except Image.DecompressionBombError as err:
        raise ImageError(f"image too large: {one_line(err)}") from None
    except MemoryError:
        raise ImageError(f"out of memory decoding {w}x{h}") from None
    except Exception as err:
        if "truncat" in str(err).lower():
            raise ImageError(f"truncated {fmt}: image file is truncated") from None
        raise ImageError(f"corrupt {fmt}: {one_line(err)}") from None
    meta = extract(img)  # after load: a PNG may keep its eXIf chunk after the pixel data
    try:
        gray, alpha, depth = _to_gray(img, meta, notes)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"out of memory decoding {w}x{h}") from None
    except Exception as err:
        raise ImageError(f"cannot convert {img.mode} pixels: {one_line(err)}") from None
    gray = _own(orient(gray, meta.orientation))
    alpha = _own(orient(alpha, meta.orientation)) if alpha is not None else None
    return Scan(gray, alpha, depth, fmt, img.mode, (gray.shape[1], gray.shape[0]), meta, notes)


def _own(a: np.ndarray) -> np.ndarray:
    """A writable, contiguous array (Pillow hands out read-only views of its buffers)."""
    return np.require(a, requirements=["C_CONTIGUOUS", "WRITEABLE", "OWNDATA"])


def _mpx(pixels: int) -> str:
    mpx = pixels / 1e6
    return f"{mpx:.0f}" if mpx >= 10 else f"{mpx:.2g}"


def _decoded_16bit_rgb_as_8(img: Image.Image) -> bool:
    if img.mode not in ("RGB", "RGBA"):
        return False
    try:
        return any(";16" in str(tile.args) for tile in img.tile or ())
    except Exception:
        return False


def orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to a (H, W[, C]) array, so the result is upright."""
    ops: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: x.swapaxes(0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: x[::-1, ::-1].swapaxes(0, 1),
        8: lambda x: np.rot90(x, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(a)) if op else a


def _to_gray(img: Image.Image, meta: Metadata, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None, int]:
    """The scan's luminance as display-encoded sRGB gray, its alpha, and its bit depth."""
    mode = img.mode
    space = meta.icc_color_space
    if mode in ("1", "L", "LA", "La"):
        base = img.convert("LA") if mode == "La" else img
        gray = np.asarray(base.getchannel("L") if mode in ("LA", "La") else base.convert("L"))
        alpha = np.asarray(base.getchannel("A")) if mode in ("LA", "La") else None
        return _gray_icc(gray, meta, notes), alpha, 8
    if mode.startswith("I;16"):
        gray = np.asarray(img).astype(np.uint16)
        return _gray_icc(gray, meta, notes), None, 16
    if mode == "I":
        return _int32_to_16(np.asarray(img)), None, 16
    if mode == "F":
        return _float_to_16(np.asarray(img)), None, 16
    if mode == "LAB":
        lightness = np.asarray(img.getchannel("L")).astype(np.float32) * np.float32(100.0 / 255.0)
        return _to_uint8(color.lightness_to_gray(lightness)), None, 8
    if space == "GRAY":
        notes.append(f"gray ICC profile ignored on {mode} pixels")
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    elif mode == "CMYK":
        img = _cmyk_to_srgb(img, meta, notes)
    elif mode not in ("RGB", "RGBA", "RGBX"):
        img = img.convert("RGB")  # YCbCr, HSV, ...
    elif space == "RGB":
        img = _rgb_icc_to_srgb(img, meta, notes)
    rgb = np.asarray(img)
    alpha = np.ascontiguousarray(rgb[..., 3]) if img.mode == "RGBA" else None
    return luminance8(rgb[..., :3]), alpha, 8


def luminance8(rgb: np.ndarray, rows_per_chunk: int = 256) -> np.ndarray:
    """8-bit sRGB (H, W, 3) -> 8-bit gray of the same CIE luminance (color.rgb_to_gray),
    chunked so a large sepia scan never needs a full float copy."""
    if rgb.shape[0] and np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])  # already neutral: exact, and fast
    linear = color.srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)
    weights = color.LUMA.astype(np.float32)
    out = np.empty(rgb.shape[:2], dtype=np.uint8)
    for y0 in range(0, rgb.shape[0], rows_per_chunk):
        chunk = rgb[y0 : y0 + rows_per_chunk]
        y = sum(linear[chunk[..., c]] * weights[c] for c in range(3))
        out[y0 : y0 + rows_per_chunk] = _to_uint8(color.linear_to_srgb(y))
    return out


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


def _int32_to_16(a: np.ndarray) -> np.ndarray:
    """32-bit integer gray: values that fit in 16 bits are kept; otherwise the data is scaled
    by the smallest power of two that fits it (ratios kept, no tone curve invented)."""
    a = np.clip(a.astype(np.int64), 0, None)
    top = int(a.max()) if a.size else 0
    shift = max(0, top.bit_length() - 16)
    if shift:
        a = (a + (1 << (shift - 1))) >> shift
    return np.clip(a, 0, 65535).astype(np.uint16)


def _float_to_16(a: np.ndarray) -> np.ndarray:
    """Float gray: read as 0..1 if it fits, else as 8-bit levels if it fits, else 16-bit levels."""
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(a.max()) if a.size else 0.0
    scale = 65535.0 if top <= 1.0 else (257.0 if top <= 255.0 else 1.0)
    return np.clip(np.rint(a * scale), 0, 65535).astype(np.uint16)


# ICC ------------------------------------------------------------------------------------------


def _gray_icc(gray: np.ndarray, meta: Metadata, notes: list[str]) -> np.ndarray:
    """Bring gray data tagged with a gray profile (Gray Gamma 2.2, Dot Gain 20%, ...) to sRGB
    gray, through the profile's own tone curve, at the data's own precision."""
    space = meta.icc_color_space
    if space is None:
        return gray
    name = describe_icc(meta.icc_profile) or "embedded"
    if space != "GRAY":
        notes.append(f"{space} ICC profile '{name}' ignored on gray pixels")
        return gray
    top = 65535 if gray.dtype == np.uint16 else 255
    trc = gray_trc(meta.icc_profile or b"")
    if trc is not None:
        levels = np.arange(top + 1, dtype=np.float64) / top
        lut = np.clip(np.rint(color.linear_to_srgb(trc(levels)) * top), 0, top).astype(gray.dtype)
        notes.append(f"gray ICC profile '{name}' converted to sRGB")
        return lut[gray]
    if gray.dtype == np.uint8:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(meta.icc_profile or b""))
            dst = ImageCms.createProfile("sRGB")
            transform = ImageCms.buildTransform(src, dst, "L", "RGB", flags=ImageCms.Flags.NOOPTIMIZE)
            rgb = ImageCms.applyTransform(Image.fromarray(gray), transform)
            notes.append(f"gray ICC profile '{name}' converted to sRGB")
            return luminance8(np.asarray(rgb))
        except Exception as err:
            notes.append(f"gray ICC profile '{name}' not applied: {one_line(err)}")
            return gray
    notes.append(f"gray ICC profile '{name}' not applied: no tone curve usable at 16 bits")
    return gray


def gray_trc(icc: bytes) -> Callable[[np.ndarray], np.ndarray] | None:
    """The gray tone curve (kTRC: 'curv' or 'para') of an ICC profile as a function from
    device gray in [0, 1] to relative luminance Y in [0, 1]; None if it has no usable one.
    With a Lab connection space the curve gives L*/100 rather than Y (ICC.1 F.2)."""
    try:
        (count,) = struct.unpack_from(">I", icc, 128)
        for i in range(count):
            sig, offset, _ = struct.unpack_from(">4sII", icc, 132 + 12 * i)
            if sig == b"kTRC":
                curve = _parse_curve(icc, offset)
                if curve is None or icc[20:24] != b"Lab ":
                    return curve
                return lambda x: color.lightness_to_luminance(100.0 * curve(x)).astype(np.float64)
    except struct.error:
        return None
    return None


def _parse_curve(icc: bytes, at: int) -> Callable[[np.ndarray], np.ndarray] | None:
    kind = icc[at : at + 4]
    if kind == b"curv":
        (n,) = struct.unpack_from(">I", icc, at + 8)
        if n == 0:
            return lambda x: np.asarray(x, dtype=np.float64)
        if n == 1:
            gamma = struct.unpack_from(">H", icc, at + 12)[0] / 256.0
            return lambda x: np.power(np.asarray(x, dtype=np.float64), gamma)
        table = np.frombuffer(icc, dtype=">u2", count=n, offset=at + 12).astype(np.float64) / 65535.0
        grid = np.linspace(0.0, 1.0, n)
        return lambda x: np.interp(np.asarray(x, dtype=np.float64), grid, table)
    if kind == b"para":
        (function,) = struct.unpack_from(">H", icc, at + 8)
        n_params = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(function)
        if n_params is None:
            return None
        p = [v / 65536.0 for v in struct.unpack_from(f">{n_params}i", icc, at + 12)]
        g, a, b, c, d, e, f = (p + [0.0] * 7)[:7]
        if function == 1:
            d = -b / a if a else 0.0
        if function == 2:
            d, e = (-b / a if a else 0.0), c

        def curve(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x, dtype=np.float64)
            if function == 0:
                return np.power(x, g)
            below = c * x + f if function == 4 else (c * x if function == 3 else np.full_like(x, e))
            above = np.power(np.clip(a * x + b, 0.0, None), g) + (e if function in (2, 4) else 0.0)
            return np.clip(np.where(x >= d, above, below), 0.0, 1.0)

        return curve
    return None


def _rgb_icc_to_srgb(img: Image.Image, meta: Metadata, notes: list[str]) -> Image.Image:
    """RGB in another space (Adobe RGB, ProPhoto...) goes to sRGB before its luminance is
    taken: the colour maths downstream is sRGB."""
    name = describe_icc(meta.icc_profile) or "embedded"
    if name.lower().startswith("srgb"):
        return img
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(meta.icc_profile or b""))
        rgb = ImageCms.profileToProfile(img.convert("RGB"), src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception as err:
        notes.append(f"RGB ICC profile '{name}' not applied: {one_line(err)}")
        return img
    notes.append(f"RGB ICC profile '{name}' converted to sRGB")
    if img.mode == "RGBA":
        rgb.putalpha(img.getchannel("A"))
    return rgb


def _cmyk_to_srgb(img: Image.Image, meta: Metadata, notes: list[str]) -> Image.Image:
    if meta.icc_color_space == "CMYK":
        name = describe_icc(meta.icc_profile) or "embedded"
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(meta.icc_profile or b""))
            out = ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
            notes.append(f"CMYK ICC profile '{name}' converted to sRGB")
            return out
        except Exception as err:
            notes.append(f"CMYK ICC profile '{name}' not applied: {one_line(err)}")
    return img.convert("RGB")


# ------------------------------------------------------------------------------------- writing


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
    tiff_compression: str = "deflate",
) -> list[str]:
    """Write (H, W, 3) uint8/uint16 RGB (+ alpha) as `fmt`, atomically; returns notes for the
    manifest. 16 bits are kept for PNG and TIFF; JPEG, WebP and BMP get 8 bits. TIFF strips are
    `tiff_compression`: "deflate" (zlib's fastest level, horizontal predictor) or "none"."""
    fmt = {"JPG": "JPEG", "TIF": "TIFF"}.get(fmt.upper(), fmt.upper())
    if fmt not in WRITE_FORMATS:
        raise WriteError(f"unsupported output format {fmt}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype not in (np.uint8, np.uint16):
        raise WriteError(f"bad pixel array {rgb.dtype} {rgb.shape}: need (H, W, 3) uint8 or uint16")
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        raise WriteError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
    notes: list[str] = []
    if rgb.dtype == np.uint16 and fmt not in ("PNG", "TIFF"):
        rgb = to_8bit(rgb)
        notes.append(f"16-bit reduced to 8 bits: {fmt} is 8-bit only")
    if alpha is not None and fmt not in _ALPHA_FORMATS:
        notes.append(f"alpha dropped: {fmt} has no alpha")
        alpha = None
    pixels = rgb if alpha is None else np.dstack([rgb, _match_depth(alpha, rgb.dtype)])
    h, w = rgb.shape[:2]
    if fmt == "WEBP" and max(w, h) > _WEBP_MAX_SIDE:
        raise WriteError(f"image too large for WebP: {w}x{h} (max {_WEBP_MAX_SIDE} px a side)")
    pixels, icc = _into_input_rgb_space(pixels, meta, fmt, notes)
    carried = carry(meta, fmt, w, h, model_name, icc)
    notes += carried.notes
    times = None
    if keep_times_from is not None:
        try:
            st = os.stat(keep_times_from)
            times = (st.st_atime_ns, st.st_mtime_ns)
        except OSError as err:
            notes.append(f"times not kept: {one_line(err.strerror or err)}")
    if tiff_compression not in TIFF_COMPRESSIONS:
        raise WriteError(f"unknown TIFF compression {tiff_compression!r}: use {' or '.join(TIFF_COMPRESSIONS)}")
    encode = {"PNG": _encode_png, "TIFF": partial(_encode_tiff, compression=tiff_compression)}.get(fmt, _encode_pillow)
    _atomic_write(Path(path), lambda fp: encode(fp, pixels, fmt, quality, carried), times)
    return notes


def _into_input_rgb_space(pixels: np.ndarray, meta: Metadata, fmt: str, notes: list[str]) -> tuple[np.ndarray, bytes | None]:
    """An RGB input's ICC profile is kept: the (sRGB) result is converted into that profile's
    space and tagged with it, so the output lives where the input did. A gray profile never
    reaches an RGB file (None: tag sRGB). LittleCMS converts 8-bit data only; 16-bit results
    stay sRGB, with a note."""
    if meta.icc_color_space != "RGB" or fmt == "BMP":
        return pixels, None
    name = describe_icc(meta.icc_profile) or "embedded"
    if name.lower().startswith("srgb"):
        return pixels, meta.icc_profile
    if pixels.dtype != np.uint8:
        notes.append(f"RGB profile {name!r} not kept for 16-bit output: written as sRGB")
        return pixels, None
    mode = "RGBA" if pixels.shape[2] == 4 else "RGB"
    try:
        dest = ImageCms.ImageCmsProfile(io.BytesIO(meta.icc_profile or b""))
        img = ImageCms.profileToProfile(Image.fromarray(pixels, mode), ImageCms.createProfile("sRGB"), dest, outputMode=mode)
    except Exception as err:  # noqa: BLE001 - a profile LittleCMS cannot use: stay sRGB
        notes.append(f"RGB profile {name!r} not kept ({one_line(err)}): written as sRGB")
        return pixels, None
    return np.asarray(img), meta.icc_profile


def to_8bit(a: np.ndarray) -> np.ndarray:
    """uint16 -> uint8, rounded (v / 257 to nearest)."""
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _match_depth(alpha: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if alpha.dtype == dtype:
        return alpha
    if dtype == np.uint16:
        return alpha.astype(np.uint16) * 257 if alpha.dtype == np.uint8 else alpha.astype(np.uint16)
    return to_8bit(alpha) if alpha.dtype == np.uint16 else np.clip(alpha, 0, 255).astype(np.uint8)


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
        raise WriteError(_write_reason(err)) from err


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


# Encoders -------------------------------------------------------------------------------------


def _encode_pillow(fp: BinaryIO, pixels: np.ndarray, fmt: str, quality: int, carried: Carried) -> None:
    img = Image.fromarray(pixels)
    kwargs = carried.save_kwargs(fmt)
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "JPEG" and carried.iptc:
        buf = io.BytesIO()
        img.save(buf, fmt, **kwargs)
        fp.write(_insert_jpeg_segment(buf.getvalue(), 0xED, b"Photoshop 3.0\x00" + photoshop_irb(carried.iptc)))
    else:
        img.save(fp, fmt, **kwargs)


def _insert_jpeg_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """Put an APPn segment after the existing APPn segments (JFIF, EXIF, ICC...)."""
    if len(payload) + 2 > 65535:
        return jpeg
    pos = 2  # after SOI
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        pos += 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
    return jpeg[:pos] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + jpeg[pos:]


def _rows_per_chunk(row_bytes: int, target: int = 1 << 20) -> int:
    return max(1, target // max(1, row_bytes))


# PNG: pixels as big-endian bytes, each row filtered with whichever of the five PNG filters
# gives the smallest sum of absolute values (the libpng heuristic), deflated as a stream.


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _latin1_keyword(key: str) -> bytes | None:
    try:
        raw = key.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return raw if 1 <= len(raw) <= 79 and b"\x00" not in raw else None


def _png_text_chunk(key: str, value: str) -> bytes | None:
    keyword = _latin1_keyword(key)
    if keyword is None:
        return None
    try:
        return _png_chunk(b"tEXt", keyword + b"\x00" + value.encode("latin-1"))
    except UnicodeEncodeError:  # iTXt: uncompressed, no language tag
        return _png_chunk(b"iTXt", keyword + b"\x00\x00\x00\x00\x00" + value.encode("utf-8"))


def _encode_png(fp: BinaryIO, pixels: np.ndarray, fmt: str, quality: int, carried: Carried) -> None:
    h, w, channels = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    fp.write(b"\x89PNG\r\n\x1a\n")
    fp.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, 6 if channels == 4 else 2, 0, 0, 0)))
    if carried.icc_profile:
        fp.write(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(carried.icc_profile)))
    if carried.dpi:
        ppm = [max(1, round(v / 0.0254)) for v in carried.dpi]
        fp.write(_png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if carried.exif:
        fp.write(_png_chunk(b"eXIf", carried.exif[6:] if carried.exif.startswith(b"Exif\x00\x00") else carried.exif))
    if carried.xmp:
        fp.write(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + carried.xmp))
    for key, value in carried.text.items():
        chunk = _png_text_chunk(key, value)
        if chunk is not None:
            fp.write(chunk)
    rows = pixels.astype(">u2").view(np.uint8).reshape(h, -1) if depth == 16 else pixels.reshape(h, -1)
    bpp = channels * depth // 8
    deflate = zlib.compressobj(6)
    previous = np.zeros(rows.shape[1], dtype=np.uint8)
    pending = bytearray()
    step = _rows_per_chunk(rows.shape[1])
    for y0 in range(0, h, step):
        block = rows[y0 : y0 + step]
        pending += deflate.compress(_png_filter(block, previous, bpp).tobytes())
        previous = block[-1]
        if len(pending) >= 1 << 20:
            fp.write(_png_chunk(b"IDAT", bytes(pending)))
            pending.clear()
    pending += deflate.flush()
    fp.write(_png_chunk(b"IDAT", bytes(pending)))
    fp.write(_png_chunk(b"IEND", b""))


def _png_filter(block: np.ndarray, previous: np.ndarray, bpp: int) -> np.ndarray:
    """(n, stride) raw rows -> (n, 1 + stride) filtered rows, each led by its filter type."""
    x = block.astype(np.int16)
    up = np.empty_like(x)
    up[0], up[1:] = previous, x[:-1]
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    up_left = np.zeros_like(x)
    up_left[:, bpp:] = up[:, :-bpp]
    # Paeth: with p = left + up - up_left, pick the neighbour closest to p
    to_left, to_up = up - up_left, left - up_left
    to_corner = np.abs(to_left + to_up)
    to_left, to_up = np.abs(to_left), np.abs(to_up)
    paeth = np.where((to_left <= to_up) & (to_left <= to_corner), left, np.where(to_up <= to_corner, up, up_left))
    n, stride = block.shape
    candidates = np.empty((5, n, stride), dtype=np.uint8)  # None, Sub, Up, Average, Paeth
    candidates[0] = block
    for i, prediction in enumerate((left, up, (left + up) >> 1, paeth), start=1):
        np.subtract(x, prediction, out=candidates[i], casting="unsafe")  # modulo 256
    cost = np.abs(candidates.view(np.int8).astype(np.int16)).sum(axis=2)
    choice = cost.argmin(axis=0)
    out = np.empty((n, stride + 1), dtype=np.uint8)
    out[:, 0] = choice
    out[:, 1:] = candidates[choice, np.arange(n)]
    return out


# TIFF: big-endian baseline RGB(A), strips horizontal-difference predicted and deflated at zlib's
# fastest level (slower levels barely shrink grainy scans further), or stored
# uncompressed. The first IFD is serialised by piexif together with the EXIF and GPS sub-IFDs, so
# every tag gets the type the EXIF/TIFF tables give it and the EXIF lives in the TIFF's own IFDs.


def _encode_tiff(fp: BinaryIO, pixels: np.ndarray, fmt: str, quality: int, carried: Carried, compression: str = "deflate") -> None:
    h, w, channels = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    rows_per_strip = _rows_per_chunk(w * channels * depth // 8, 256 * 1024)
    deflate = compression == "deflate"
    strips = []
    for y0 in range(0, h, rows_per_strip):
        block = pixels[y0 : y0 + rows_per_strip]
        if not deflate:
            strips.append(block.astype(">u2" if depth == 16 else np.uint8).tobytes())
            continue
        diff = block.copy()
        diff[:, 1:] -= block[:, :-1]  # predictor 2: wraps, as the reader's running sum does
        strips.append(zlib.compress(diff.astype(">u2" if depth == 16 else np.uint8).tobytes(), 1))

    ifds = piexif.load(carried.exif) if carried.exif else {"0th": {}, "Exif": {}, "GPS": {}, "Interop": {}}
    ifds["1st"], ifds["thumbnail"] = {}, None
    zeroth = ifds["0th"]
    zeroth.update(
        {
            256: w,
            257: h,
            258: (depth,) * channels,
            259: 8 if deflate else 1,  # Adobe deflate, or none
            262: 2,  # RGB
            277: channels,
            278: rows_per_strip,
            279: tuple(len(s) for s in strips),
            284: 1,  # chunky
            317: 2 if deflate else 1,  # horizontal differencing, or none
        }
    )
    if channels == 4:
        zeroth[338] = (2,)  # unassociated alpha
    if carried.icc_profile:
        zeroth[34675] = carried.icc_profile
    if carried.xmp:
        zeroth[700] = carried.xmp
    if carried.iptc:
        zeroth[34377] = photoshop_irb(carried.iptc)
    if carried.dpi:
        zeroth[282] = rational(carried.dpi[0])
        zeroth[283] = rational(carried.dpi[1])
        zeroth[296] = 2
    relative = np.cumsum([0] + [len(s) for s in strips[:-1]]).tolist()
    zeroth[273] = tuple(relative)
    header_len = len(piexif.dump(ifds)) - 6  # offsets are fixed-size LONGs: the length is final
    header_len += header_len % 2
    zeroth[273] = tuple(header_len + r for r in relative)
    header = sort_ifd_entries(piexif.dump(ifds)[6:])  # without b"Exif\0\0": a TIFF starts at its byte-order mark
    fp.write(header.ljust(header_len, b"\x00"))
    for strip in strips:
        fp.write(strip)

