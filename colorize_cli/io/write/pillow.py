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

from colorize_cli.io.meta.carry import Carried


def encode_pillow(fp: BinaryIO, pixels: np.ndarray, fmt: str, quality: int, carried: Carried) -> None:
    img = Image.fromarray(pixels)
    kwargs = carried.save_kwargs(fmt)
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "JPEG" and carried.photoshop:
        buf = io.BytesIO()
        img.save(buf, fmt, **kwargs)
        fp.write(insert_jpeg_segment(buf.getvalue(), 0xED, b"Photoshop 3.0\x00" + carried.photoshop))
    else:
        img.save(fp, fmt, **kwargs)


def insert_jpeg_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """Put an APPn segment after the existing APPn segments (JFIF, EXIF, ICC...)."""
    if len(payload) + 2 > 65535:
        return jpeg
    pos = 2  # after SOI
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        pos += 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
    return jpeg[:pos] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + jpeg[pos:]
