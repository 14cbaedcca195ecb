"""JPEG 2000 writer: always lossless (reversible 5/3 wavelet, no quality layers), so a lossless
master stays lossless. 8-bit pages by Pillow, 16-bit colour by imagecodecs (both OpenJPEG);
Pillow has no 16-bit RGB mode. Neither writes metadata, so the EXIF, IPTC and XMP go in as the
`uuid` boxes exiftool and other readers look for, and the capture resolution as a `res ` box.
A JPEG 2000 input's other boxes (XML, GeoJP2 and other uuid boxes...) go back byte for byte,
before or after the codestream as they stood, and its codestream comments (COM) replace
OpenJPEG's own in the new codestream's main header.
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
    boxes += b"".join(_box(c.kind, c.data) for c in carried.jp2_boxes if not c.after)
    tail = b"".join(_box(c.kind, c.data) for c in carried.jp2_boxes if c.after)
    pos = 0
    while pos + 8 <= len(jp2):
        size, kind = struct.unpack_from(">I4s", jp2, pos)
        if kind == b"jp2h" and (carried.jp2_res or carried.dpi) and size >= 8:  # resolution, in the header superbox
            res = carried.jp2_res or _box(b"res ", _box(b"resc", _resc(carried.dpi)))  # a JP2 input's own, whole
            jp2 = jp2[:pos] + struct.pack(">I", size + len(res)) + jp2[pos + 4 : pos + size] + res + jp2[pos + size :]
            size += len(res)
        if kind == b"jp2c":
            if carried.jp2_comments and size >= 8:
                codestream = _with_comments(jp2[pos + 8 : pos + size], carried.jp2_comments)
                jp2 = jp2[:pos] + _box(b"jp2c", codestream) + jp2[pos + size :]
            return jp2[:pos] + boxes + jp2[pos:] + tail
        if size == 1:
            (size,) = struct.unpack_from(">Q", jp2, pos + 8)
        if size < 8:
            break
        pos += size
    return jp2 + boxes + tail


def _with_comments(codestream: bytes, comments: list[bytes]) -> bytes:
    """The codestream with its main header's COM segments replaced by `comments` (bodies:
    Rcom + text), put just before the first tile part. Unchanged if its header cannot be followed."""
    pos, kept = 2, bytearray(codestream[:2])  # SOC
    while pos + 4 <= len(codestream) and codestream[pos] == 0xFF:
        marker = codestream[pos + 1]
        if marker == 0x90:  # SOT: the main header ends here
            ours = b"".join(b"\xff\x64" + struct.pack(">H", len(c) + 2) + c for c in comments if len(c) + 2 <= 0xFFFF)
            return bytes(kept) + ours + codestream[pos:]
        (length,) = struct.unpack_from(">H", codestream, pos + 2)
        if length < 2:
            break
        if marker != 0x64:
            kept += codestream[pos : pos + 2 + length]
        pos += 2 + length
    return codestream
