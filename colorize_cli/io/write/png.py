"""PNG writer for 8- and 16-bit RGB(A), with every chunk the metadata needs (iCCP, pHYs, eXIf,
iTXt XMP, tEXt/iTXt text with language tags). Hand-written because no well-kept Python library
writes 16-bit colour PNG with these chunks: Pillow has no 16-bit RGB mode, imagecodecs'
png_encode and pypng write no iCCP/eXIf/iTXt. One path serves both bit depths, so 8- and
16-bit outputs carry metadata identically.

Pixels go as big-endian bytes, each row filtered with whichever of the five PNG filters gives
the smallest sum of absolute values (the libpng heuristic), deflated as one stream.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

from colorize_cli.io.meta.carry import Carried


def rows_per_chunk(row_bytes: int, target: int = 1 << 20) -> int:
    return max(1, target // max(1, row_bytes))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _latin1_keyword(key: str) -> bytes | None:
    try:
        raw = key.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return raw if 1 <= len(raw) <= 79 and b"\x00" not in raw else None


def _png_text_chunk(key: str, value: str) -> bytes | None:
    """tEXt (Latin-1) when the input's chunk was one and the text fits; otherwise iTXt (UTF-8),
    with the language tag and translated keyword an input iTXt had."""
    keyword = _latin1_keyword(key)
    if keyword is None:
        return None
    lang, tkey = getattr(value, "lang", None), getattr(value, "tkey", None)
    if lang is None and tkey is None:
        try:
            return _png_chunk(b"tEXt", keyword + b"\x00" + value.encode("latin-1"))
        except UnicodeEncodeError:
            pass
    head = keyword + b"\x00\x00\x00" + (lang or "").encode("ascii", "replace") + b"\x00" + (tkey or "").encode("utf-8") + b"\x00"
    return _png_chunk(b"iTXt", head + str(value).encode("utf-8"))


def encode_png(fp: BinaryIO, pixels: np.ndarray, carried: Carried) -> None:
    """Write one PNG of (H, W, 3|4) uint8/uint16 pixels and the carried metadata to `fp`."""
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
    step = rows_per_chunk(rows.shape[1])
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

