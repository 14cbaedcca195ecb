"""The formats Pillow writes for us (8 bits a channel): JPEG, WebP, BMP and JPEG 2000.

Pillow writes EXIF, ICC and XMP itself for JPEG and WebP. What it does not write is added
around its output: the Photoshop resource block (IPTC) as a JPEG APP13 segment, and for JPEG
2000 the EXIF, XMP and IPTC as the `uuid` boxes exiftool and other readers look for.
JPEG 2000 is always written lossless (reversible 5/3 wavelet, no quality layers), so a
lossless master stays lossless.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

import numpy as np
from PIL import Image

from colorize_cli import tiff_ifd
from colorize_cli.carry import Carried

_UUID_EXIF = b"JpgTiffExif->JP2"
_UUID_XMP = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
_UUID_IPTC = bytes.fromhex("33c7a4d2b81d4723a0baf1a3e097ad38")


def encode_pillow(fp: BinaryIO, pixels: np.ndarray, fmt: str, quality: int, carried: Carried) -> None:
    img = Image.fromarray(pixels)
    kwargs = carried.save_kwargs(fmt)
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "JPEG" and carried.photoshop:
        buf = io.BytesIO()
        img.save(buf, fmt, **kwargs)
        fp.write(insert_jpeg_segment(buf.getvalue(), 0xED, b"Photoshop 3.0\x00" + carried.photoshop))
    elif fmt == "JPEG2000":
        buf = io.BytesIO()
        img.save(buf, fmt, irreversible=False, no_jp2=False)
        fp.write(_with_uuid_boxes(buf.getvalue(), carried))
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


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _resc(dpi: tuple[float, float]) -> bytes:
    """A `resc` box body: grid points per metre as numerator, denominator and a power of ten."""
    parts = []
    for value in (dpi[1], dpi[0]):  # vertical first
        per_metre, exponent = value / 0.0254, 0
        while per_metre >= 65535:
            per_metre, exponent = per_metre / 10, exponent + 1
        parts.append((max(1, round(per_metre)), exponent))
    (vn, ve), (hn, he) = parts
    return struct.pack(">HHHHbb", vn, 1, hn, 1, ve, he)


def _with_uuid_boxes(jp2: bytes, carried: Carried) -> bytes:
    """The JP2 file with its capture resolution (`res ` box in the header) and EXIF, IPTC and
    XMP `uuid` boxes put before its codestream box."""
    boxes = b""
    if carried.tags is not None:
        boxes += _box(b"uuid", _UUID_EXIF + tiff_ifd.exif_block(carried.tags))
    if carried.photoshop:
        from colorize_cli import irb  # noqa: PLC0415

        iptc = irb.parse(carried.photoshop).get(irb.IPTC, (b"", b""))[1]
        if iptc:
            boxes += _box(b"uuid", _UUID_IPTC + iptc)
    if carried.xmp:
        boxes += _box(b"uuid", _UUID_XMP + carried.xmp)
    pos = 0
    while pos + 8 <= len(jp2):
        size, kind = struct.unpack_from(">I4s", jp2, pos)
        if kind == b"jp2h" and carried.dpi and size >= 8:  # capture resolution, in the header superbox
            res = _box(b"res ", _box(b"resc", _resc(carried.dpi)))
            jp2 = jp2[:pos] + struct.pack(">I", size + len(res)) + jp2[pos + 4 : pos + size] + res + jp2[pos + size :]
            size += len(res)
        if kind == b"jp2c":
            return jp2[:pos] + boxes + jp2[pos:]
        if size == 1:
            (size,) = struct.unpack_from(">Q", jp2, pos + 8)
        if size < 8:
            break
        pos += size
    return jp2 + boxes
