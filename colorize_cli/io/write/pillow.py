"""The formats Pillow writes for us (8 bits a channel): JPEG, WebP and BMP.

Pillow writes EXIF, ICC and XMP itself for JPEG and WebP. What it does not write is added
around its output: the Photoshop resource block (IPTC) as a JPEG APP13 segment.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

import numpy as np
from PIL import Image

from colorize_cli.io.meta.carry import Carried, jpeg_chunks
from colorize_cli.io.meta.source import APP13_HEADER


def encode_pillow(fp: BinaryIO, pixels: np.ndarray, fmt: str, quality: int, carried: Carried) -> None:
    img = Image.fromarray(pixels)
    kwargs = carried.save_kwargs(fmt)
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "JPEG" and carried.jpeg_segments is not None:  # a JPEG's own segments, as carry.py decided
        buf = io.BytesIO()
        img.save(buf, fmt, quality=int(quality))
        fp.write(with_segments(buf.getvalue(), carried.jpeg_segments, carried.jpeg_trailer))
    elif fmt == "JPEG" and carried.photoshop:
        buf = io.BytesIO()
        img.save(buf, fmt, **kwargs)
        data = buf.getvalue()
        for marker, payload in reversed(jpeg_chunks(0xED, APP13_HEADER, carried.photoshop)):
            data = insert_jpeg_segment(data, marker, payload)
        fp.write(data)
    else:
        img.save(fp, fmt, **kwargs)


def with_segments(jpeg: bytes, segments: list[tuple[int, bytes]], trailer: bytes) -> bytes:
    """Pillow's JPEG with its own APPn/COM segments replaced by `segments`, and `trailer` after EOI."""
    pos = 2  # after SOI
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and (0xE0 <= jpeg[pos + 1] <= 0xEF or jpeg[pos + 1] == 0xFE):
        pos += 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
    head = b"".join(bytes([0xFF, m]) + struct.pack(">H", len(p) + 2) + p for m, p in segments)
    return jpeg[:2] + head + jpeg[pos:] + trailer


def insert_jpeg_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """Put an APPn segment after the existing APPn segments (JFIF, EXIF, ICC...)."""
    if len(payload) + 2 > 65535:
        return jpeg
    pos = 2  # after SOI
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        pos += 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
    return jpeg[:pos] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + jpeg[pos:]
