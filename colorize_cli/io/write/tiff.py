"""TIFF writer: one file, every page, 8- or 16-bit RGB(A), each page with its own tags.

Strips are LZW-compressed with the horizontal predictor by imagecodecs (LZW, unlike Deflate, is
a compression exiftool -validate accepts in a TIFF), or, as asked (`COMPRESSIONS`), deflated at
zlib's fastest level with the predictor (slower levels barely shrink grainy scans further), or
stored uncompressed. The IFDs are laid out by `tiff_ifd`, in
the byte order of the input's tags, with every carried tag as stored. tifffile is not used to
write: it always writes a resolution (1/1 "None" when given none) and cannot write the EXIF
and GPS sub-IFDs.

A BigTIFF input gives a BigTIFF (8-byte offsets, 20-byte entries), as TIFF in, TIFF out would
have it. Layout: header, the strips of every page, then each page's IFD followed by its Exif, Interop
and GPS IFDs; pages chained in order. A MakerNote is the exception: many makers' notes point at
their values by offsets from the TIFF header, so it is written at the very offset it had in
the input, and strips and IFDs fill the space around it (`tiff_ifd.Space`).
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import imagecodecs
import numpy as np

from colorize_cli.io.meta import tiff_ifd
from colorize_cli.io.meta.carry import Carried
from colorize_cli.io.meta.source import ICC_TAG, IPTC_TAG, PHOTOSHOP_TAG, XMP_TAG
from colorize_cli.io.meta.tiff_ifd import BYTE, LONG, LONG8, SHORT, TYPE_SIZES, UNDEFINED, Directory, Entry, pack

_LZW, _RGB, _CHUNKY, _HORIZONTAL = 5, 2, 1, 2
COMPRESSIONS = {"lzw": _LZW, "deflate": 8, "none": 1}  # name -> TIFF Compression tag value
_STRIP_BYTES = 256 * 1024


def encode_tiff(fp: BinaryIO, pages: list[tuple[np.ndarray, Carried]], compression: str = "lzw") -> None:
    """Write every (pixels, carried) page to `fp`, in order, as one TIFF; `compression` is a key of COMPRESSIONS."""
    order = next((c.tags.order for _, c in pages if c.tags is not None), ">")
    big = any(c.big_tiff for _, c in pages)  # a BigTIFF stays a BigTIFF
    if big:
        fp.write((b"II" if order == "<" else b"MM") + struct.pack(order + "HHH", 43, 8, 0) + bytes(8))
    else:
        fp.write((b"II*\x00" if order == "<" else b"MM\x00*") + b"\x00\x00\x00\x00")
    space = tiff_ifd.Space(16 if big else 8)
    directories = [_page_directory(order, carried) for _, carried in pages]
    pins: list[int | None] = []
    for d in directories:  # a MakerNote stands where its offsets expect it; strips go around it
        origin = tiff_ifd.maker_note_origin(d)
        if origin and space.reserve(*origin):
            fp.seek(origin[0])
            fp.write(d.exif[tiff_ifd.MAKER_NOTE].data)
            pins.append(origin[0])
        else:
            pins.append(None)  # none, or two pages claim the same bytes: the second one moves
    layouts: list[tuple[np.ndarray, list[int], list[int], int]] = []
    for pixels, _ in pages:
        offsets, counts, rows = [], [], _rows_per_strip(pixels)
        for strip in _strips(pixels, rows, order, compression):
            at = space.take(len(strip))
            fp.seek(at)
            fp.write(strip)
            offsets.append(at)
            counts.append(len(strip))
        layouts.append((pixels, offsets, counts, rows))
    chain: list[tuple[int, int]] = []  # (main IFD offset, offset of its next-IFD field) a page
    for d, pin, (pixels, offsets, counts, rows) in zip(directories, pins, layouts):
        extra = _image_tags(order, pixels, offsets, counts, rows, compression, big)
        pieces, main_at, next_at = tiff_ifd.place_directory(d, space, extra, pin=False, maker_note_at=pin, big=big)
        for at, data in pieces:
            fp.seek(at)
            fp.write(data)
        chain.append((main_at, next_at))
    offset = order + ("Q" if big else "I")
    for (_, next_at), (following, _) in zip(chain, chain[1:]):
        fp.seek(next_at)
        fp.write(struct.pack(offset, following))
    fp.seek(8 if big else 4)
    fp.write(struct.pack(offset, chain[0][0]))
    fp.seek(0, 2)
    if fp.tell() % 2:
        fp.write(b"\x00")


def _rows_per_strip(pixels: np.ndarray) -> int:
    return max(1, _STRIP_BYTES // max(1, pixels.shape[1] * pixels.shape[2] * pixels.itemsize))


def _strips(pixels: np.ndarray, rows: int, order: str, compression: str):
    dtype = np.dtype(pixels.dtype).newbyteorder(order)
    for y0 in range(0, pixels.shape[0], rows):
        block = pixels[y0 : y0 + rows]
        if compression == "none":
            yield block.astype(dtype, copy=False).tobytes()
            continue
        diff = block.copy()
        diff[:, 1:] -= block[:, :-1]  # predictor 2: wraps, as the reader's running sum does
        data = diff.astype(dtype, copy=False).tobytes()
        yield imagecodecs.lzw_encode(data) if compression == "lzw" else zlib.compress(data, 1)


def _image_tags(order: str, pixels: np.ndarray, offsets: list[int], counts: list[int], rows: int,
                compression: str, big: bool = False) -> dict[int, Entry]:
    h, w, channels = pixels.shape
    where = LONG8 if big else LONG  # strip offsets and sizes: 8 bytes in a BigTIFF
    tags = {
        256: pack(order, LONG, w),
        257: pack(order, LONG, h),
        258: pack(order, SHORT, [8 * pixels.itemsize] * channels),
        259: pack(order, SHORT, COMPRESSIONS[compression]),
        262: pack(order, SHORT, _RGB),
        273: pack(order, where, offsets),
        277: pack(order, SHORT, channels),
        278: pack(order, LONG, rows),
        279: pack(order, where, counts),
        284: pack(order, SHORT, _CHUNKY),
        317: pack(order, SHORT, _HORIZONTAL if compression != "none" else 1),
    }
    if channels == 4:
        tags[338] = pack(order, SHORT, [2])  # unassociated alpha
    return tags


def _page_directory(order: str, carried: Carried) -> Directory:
    d = carried.tags or Directory(order)
    tags = dict(d.tags)
    if carried.icc_profile:
        tags[ICC_TAG] = pack(order, UNDEFINED, carried.icc_profile)
    if carried.xmp:
        tags[XMP_TAG] = pack(order, BYTE, carried.xmp)
    if carried.photoshop:
        tags[PHOTOSHOP_TAG] = pack(order, BYTE, carried.photoshop)
    if carried.iptc:
        kind = carried.iptc_type if carried.iptc_type in TYPE_SIZES else UNDEFINED
        size = TYPE_SIZES[kind]
        data = carried.iptc + b"\x00" * (-len(carried.iptc) % size)
        tags[IPTC_TAG] = Entry(kind, len(data) // size, data)  # the bytes as stored: the IIM stream
    return Directory(order, tags, d.exif, d.gps, d.interop)
