"""JPEG 2000 writer: always lossless (reversible 5/3 wavelet, no quality layers), so a lossless
master stays lossless. 8-bit pages by Pillow, 16-bit colour by imagecodecs (both OpenJPEG);
Pillow has no 16-bit RGB mode. Neither writes metadata, so the EXIF, IPTC and XMP go in as the
`uuid` boxes exiftool and other readers look for, and the capture resolution as a `res ` box.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

import imagecodecs
import numpy as np
from PIL import Image

from colorize_cli.io.meta import irb
from colorize_cli.io.meta import tiff_ifd
from colorize_cli.io.meta.carry import Carried

_UUID_EXIF = b"JpgTiffExif->JP2"
_UUID_XMP = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
_UUID_IPTC = bytes.fromhex("33c7a4d2b81d4723a0baf1a3e097ad38")


def encode_jp2(fp: BinaryIO, pixels: np.ndarray, carried: Carried) -> None:
    if pixels.dtype == np.uint16:
        data = bytes(imagecodecs.jpeg2k_encode(pixels, level=0, codecformat="jp2", reversible=True))
    else:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG2000", irreversible=False, no_jp2=False)
        data = buf.getvalue()
    fp.write(_with_boxes(data, carried))


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


def _with_boxes(jp2: bytes, carried: Carried) -> bytes:
    """The JP2 file with its capture resolution (`res ` box in the header) and EXIF, IPTC and
    XMP `uuid` boxes put before its codestream box."""
    boxes = b""
    if carried.tags is not None:
        boxes += _box(b"uuid", _UUID_EXIF + tiff_ifd.exif_block(carried.tags))
    if carried.photoshop:
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
