"""PNG writer for 8- and 16-bit RGB(A), with every chunk the metadata needs (iCCP, pHYs, eXIf,
iTXt XMP, tEXt/iTXt text with language tags) and a PNG input's own chunks, as `carry.py`
decides them. Hand-written because no well-kept Python library
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
from colorize_cli.io.meta.source import Chunk


def rows_per_chunk(row_bytes: int, target: int = 1 << 20) -> int:
    return max(1, target // max(1, row_bytes))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(fp: BinaryIO, pixels: np.ndarray, carried: Carried) -> None:
    """Write one PNG of (H, W, 3|4) uint8/uint16 pixels and the carried metadata to `fp`: the
    chunks `carry.py` decided (`Carried.png_chunks`), each before or after the pixel data."""
    h, w, channels = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    chunks = carried.png_chunks or []
    fp.write(b"\x89PNG\r\n\x1a\n")
    fp.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, 6 if channels == 4 else 2, 0, 0, 0)))
    for chunk in chunks:
        if not chunk.after:
            fp.write(_png_chunk(chunk.kind, _fit(chunk, depth)))
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
    for chunk in chunks:
        if chunk.after:
            fp.write(_png_chunk(chunk.kind, _fit(chunk, depth)))
    fp.write(_png_chunk(b"IEND", b""))


def _fit(chunk: Chunk, depth: int) -> bytes:
    """A chunk's data for this bit depth: bKGD comes as 16-bit RGB."""
    if chunk.kind == b"bKGD" and depth == 8:
        return struct.pack(">3H", *(round(v / 257) for v in struct.unpack(">3H", chunk.data)))
    return chunk.data


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

