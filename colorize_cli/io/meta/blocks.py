"""The blocks a file holds beside its pixels, read raw per format so that they can be carried byte
for byte: JPEG segments and trailer, JPEG 2000 boxes and codestream comments (and whether the
codestream is cut short), PNG chunks, PNM header comments, GIF extension blocks, Photoshop resources.
`source.extract` reads what Pillow decodes; these add what it does not keep."""

from __future__ import annotations

import struct
import zlib

from colorize_cli.io.meta import irb
from colorize_cli.io.meta import tiff_ifd
from colorize_cli.io.meta.source import APP13_HEADER, Chunk, Comment, EXIF_HEADER, Metadata, orientation


def jpeg_structure(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """A JPEG's APPn/COM segments before its first scan, (marker, payload) in file order (marker
    0: stray bytes between segments, which decoders skip), and whatever follows its EOI (a trailer: AFCP, PhotoMechanic, an MPO's other images...).
    Raises ValueError on a structure it cannot follow."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("no SOI")
    segments: list[tuple[int, bytes]] = []
    pos, scanning = 2, False
    size = len(data)
    while pos < size:
        if data[pos] != 0xFF:
            following = data.find(b"\xff", pos)  # entropy-coded data, or junk a decoder skips
            if following < 0:
                raise ValueError("no EOI")
            if not scanning:  # (0, junk): bytes between segments, no part of any (a mis-stated length)
                segments.append((0, bytes(data[pos:following])))
            pos = following
            continue
        marker = data[pos + 1] if pos + 1 < size else -1
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x00 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # stuffed byte, RSTn, TEM
            pos += 2
            continue
        if marker == 0xD9:
            return segments, data[pos + 2 :]
        if marker < 0 or pos + 4 > size:
            raise ValueError("cut short")
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2 or pos + 2 + length > size:
            raise ValueError(f"segment at {pos} runs past the end")
        if not scanning and (0xE0 <= marker <= 0xEF or marker == 0xFE):
            segments.append((marker, bytes(data[pos + 4 : pos + 2 + length])))
        if marker == 0xDA:
            scanning = True
        pos += 2 + length
    raise ValueError("no EOI")


def add_jpeg_segments(meta: Metadata, data: bytes) -> None:
    """A JPEG's own segments and trailer, and its Photoshop resources as stored (every APP13
    segment's, in order; Pillow's view of them turns ResolutionInfo into numbers)."""
    try:
        meta.jpeg_segments, meta.jpeg_trailer = jpeg_structure(data)
    except (ValueError, IndexError, struct.error):
        return
    app13 = b"".join(p[len(APP13_HEADER) :] for m, p in meta.jpeg_segments if m == 0xED and p.startswith(APP13_HEADER))
    if app13:
        meta.photoshop = app13
        meta.iptc = irb.parse(app13).get(irb.IPTC, (b"", b""))[1] or meta.iptc


_JP2_UUIDS = {
    b"JpgTiffExif->JP2": "exif",
    bytes.fromhex("be7acfcb97a942e89c71999491e3afac"): "xmp",
    bytes.fromhex("33c7a4d2b81d4723a0baf1a3e097ad38"): "iptc",
}


# boxes the writer makes afresh, or that describe codestreams and layers no copy has (JPX)
_JP2_STRUCTURE = frozenset({b"jP  ", b"ftyp", b"jp2h", b"jp2c", b"rreq", b"jpch", b"jplh", b"ftbl", b"dtbl", b"cgrp",
                            b"creg", b"mdat", b"drep", b"cref"})
_BOX_LIMIT = 64 << 20  # bytes of boxes and chunks read to be carried (a larger one is not carried)


def add_jp2_boxes(meta: Metadata, read: tiff_ifd.Reader) -> None:
    """EXIF, XMP and IPTC of a JPEG 2000 file (`uuid` boxes, which Pillow does not read), the
    other boxes a copy carries (XML, GeoJP2 and other uuid boxes, ...) and the codestream's
    comments. A bare codestream (.j2k) has only the comments."""
    if read(0, 4) == b"\xff\x4f\xff\x51":
        meta.jp2_comments = _codestream_comments(read, 0)
        return
    pos, after = 0, False
    for _ in range(1000):
        head = read(pos, 16)
        if len(head) < 8:
            return
        size, kind = struct.unpack_from(">I4s", head)
        header = 8
        if size == 1 and len(head) == 16:
            size, header = struct.unpack_from(">Q", head, 8)[0], 16
        name = None
        if kind == b"uuid" and size > header + 16:
            body = read(pos + header, size - header)
            name = _JP2_UUIDS.get(body[:16])
            payload = body[16:]
            if name == "exif":
                meta.exif = payload if payload.startswith(EXIF_HEADER) else EXIF_HEADER + payload
            elif name and payload:
                setattr(meta, name, payload)
        if kind == b"jp2c":
            meta.jp2_comments = _codestream_comments(read, pos + header)
            after = True
        elif kind == b"jp2h" and header < size <= _BOX_LIMIT:
            meta.jp2_res = _child_box(read(pos + header, size - header), b"res ")
        elif name is None and kind not in _JP2_STRUCTURE and header <= size <= _BOX_LIMIT:
            meta.jp2_boxes.append(Chunk(bytes(kind), read(pos + header, size - header), after))
        if size < header:  # 0: the last box runs to the end of the file
            return
        pos += size


def _child_box(body: bytes, kind: bytes) -> bytes:
    """The first box of `kind` in a superbox's body, whole (header too), or b""."""
    pos = 0
    while pos + 8 <= len(body):
        size, name = struct.unpack_from(">I4s", body, pos)
        if size < 8:
            return b""
        if name == kind:
            return bytes(body[pos : pos + size])
        pos += size
    return b""


def _codestream_comments(read: tiff_ifd.Reader, start: int) -> list[bytes]:
    """The bodies (Rcom + text) of the COM segments in a codestream's main header."""
    out: list[bytes] = []
    pos = start + 2  # after SOC
    for _ in range(1000):
        head = read(pos, 4)
        if len(head) < 4 or head[0] != 0xFF or head[1] in (0x90, 0x93, 0xD9):  # SOT, SOD, EOC: header over
            break
        (length,) = struct.unpack_from(">H", head, 2)
        if length < 2:
            break
        if head[1] == 0x64:
            out.append(read(pos + 4, length - 2))
        pos += 2 + length
    return out


def jp2_codestream_cut(read: tiff_ifd.Reader, size: int) -> bool:
    """Whether a JPEG 2000 file (or bare codestream) ends before its codestream does: no tile
    part at all, a tile part longer than what is left, or no end-of-codestream marker."""
    try:
        return _jp2_cut(read, size)
    except (ValueError, IndexError, struct.error):
        return False


def _jp2_cut(read: tiff_ifd.Reader, size: int) -> bool:
    start = 0
    if read(0, 4) != b"\xff\x4f\xff\x51":
        pos = 0
        for _ in range(1000):
            head = read(pos, 16)
            if len(head) < 8:
                return False
            length, kind = struct.unpack_from(">I4s", head)
            header = 8
            if length == 1 and len(head) == 16:
                length, header = struct.unpack_from(">Q", head, 8)[0], 16
            if kind == b"jp2c":
                start = pos + header
                break
            if length < header:
                return False
            pos += length
        else:
            return False
    pos = start + 2
    seen_tile = False
    for _ in range(1_000_000):
        head = read(pos, 12)
        if len(head) < 2:
            return True  # the file ends inside the codestream
        if head[:2] == b"\xff\xd9":
            return False
        if len(head) < 4 or head[0] != 0xFF:
            return seen_tile is False
        if head[1] == 0x90 and len(head) >= 10:  # SOT: the tile part's length, from its SOT
            (psot,) = struct.unpack_from(">I", head, 6)
            seen_tile = True
            if psot == 0:  # the last tile part runs to EOC
                return read(size - 2, 2) != b"\xff\xd9"
            if pos + psot > size:
                return True
            pos += psot
            continue
        (length,) = struct.unpack_from(">H", head, 2)
        if length < 2:
            return False
        pos += 2 + length
    return False


_PNG_CRITICAL = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def add_png_chunks(meta: Metadata, read: tiff_ifd.Reader) -> None:
    """A PNG's ancillary chunks as stored (the pixel data is not read), its IHDR's bit depth
    and colour type and its palette: a PNG output carries every chunk that stays true."""
    if read(0, 8) != PNG_SIGNATURE:
        return
    chunks: list[Chunk] = []
    pos, after, total = 8, False, 0
    for _ in range(100_000):
        head = read(pos, 8)
        if len(head) < 8:
            break
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND":
            break
        if kind == b"IDAT":
            after = True
        elif kind == b"IHDR":
            ihdr = read(pos + 8, 13)
            if len(ihdr) == 13:
                meta.png_header = (ihdr[8], ihdr[9])
        elif kind == b"PLTE":
            meta.png_palette = read(pos + 8, min(length, 768))
        elif kind not in _PNG_CRITICAL and kind != b"fdAT":
            total += length
            if total > _BOX_LIMIT:
                break
            data = read(pos + 8, length)
            if len(data) < length:
                break
            chunks.append(Chunk(bytes(kind), data, after))
        pos += 12 + length
    meta.png_chunks = chunks


def add_pnm_comment(meta: Metadata, read: tiff_ifd.Reader) -> None:
    """The `#` comment lines of a PNM header (which Pillow skips), as exiftool reads them: each
    line without its "# ", joined by newlines."""
    head = read(0, 1 << 16)
    if len(head) < 3 or head[:1] != b"P":
        return
    lines: list[bytes] = []
    pos, tokens = 2, 0
    need = 2 if head[1:2] in (b"1", b"4") else 3  # width, height (and maxval but for bitmaps)
    while pos < len(head) and tokens < need:
        c = head[pos : pos + 1]
        if c == b"#":
            end = len(head)
            for stop in (head.find(b"\n", pos), head.find(b"\r", pos)):
                if stop >= 0:
                    end = min(end, stop)
            line = head[pos + 1 : end]
            lines.append(line[1:] if line.startswith(b" ") else line)
            pos = end
        elif c.isspace():
            pos += 1
        else:
            while pos < len(head) and not head[pos : pos + 1].isspace() and head[pos : pos + 1] != b"#":
                pos += 1
            tokens += 1
    if lines:
        meta.text.setdefault("Comment", Comment.of(b"\n".join(lines)))


_GIF_XMP, _GIF_ICC = b"XMP DataXMP", b"ICCRGBG1012"


def add_gif_blocks(meta: Metadata, read: tiff_ifd.Reader) -> None:
    """A GIF's XMP and ICC profile (application extensions Pillow does not read)."""
    data = read(0, _BOX_LIMIT)
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        return
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)

    def sub_blocks(at: int) -> tuple[list[bytes], int]:
        parts = []
        while at < len(data) and data[at]:
            parts.append(data[at + 1 : at + 1 + data[at]])
            at += 1 + data[at]
        return parts, at + 1

    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            return
        if block == 0x2C:  # image: descriptor, local colour table, LZW code size, data
            if pos + 10 > len(data):
                return
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
            pos = sub_blocks(pos)[1]
        elif block == 0x21 and pos + 2 < len(data):
            if data[pos + 1] == 0xFF and data[pos + 2] == 11 and data[pos + 3 : pos + 14] in (_GIF_XMP, _GIF_ICC):
                app, start = data[pos + 3 : pos + 14], pos + 14
                parts, end = sub_blocks(start)
                if app == _GIF_XMP:  # raw packet, then a 258-byte "magic trailer" that ends the blocks
                    raw = data[start:end]
                    cut = raw.find(b"\x01\xff\xfe\xfd")
                    if cut > 0 and not meta.xmp:
                        meta.xmp = bytes(raw[:cut])
                    pos = start + (cut + 258 if cut > 0 else len(raw))
                    continue
                if not meta.icc_profile:
                    meta.icc_profile = b"".join(parts) or None
                pos = end
            else:
                pos = sub_blocks(pos + 2)[1]
        else:
            return


PSD_RESOLUTION, PSD_ICC, PSD_EXIF, PSD_EXIF3, PSD_XMP = 0x03ED, 0x040F, 0x0422, 0x0423, 0x0424


def add_psd_resources(meta: Metadata, read: tiff_ifd.Reader) -> None:
    """A PSD's image resources as stored: the Photoshop resource block (a TIFF output's tag
    34377), and inside it the IPTC, XMP, EXIF, ICC profile and resolution (ResolutionInfo)."""
    head = read(0, 30)
    if len(head) < 30 or head[:4] != b"8BPS":
        return
    (mode_len,) = struct.unpack_from(">I", head, 26)
    at = 26 + 4 + mode_len
    size_bytes = read(at, 4)
    if len(size_bytes) < 4:
        return
    (size,) = struct.unpack(">I", size_bytes)
    block = read(at + 4, min(size, _BOX_LIMIT))
    resources = irb.parse(block)
    if not resources:
        return
    meta.photoshop = block
    meta.iptc = resources.get(irb.IPTC, (b"", b""))[1] or meta.iptc
    meta.xmp = meta.xmp or resources.get(PSD_XMP, (b"", b""))[1] or None
    meta.icc_profile = meta.icc_profile or resources.get(PSD_ICC, (b"", b""))[1] or None
    exif = resources.get(PSD_EXIF, (b"", b""))[1]
    if exif and not meta.exif and exif[:4] in (b"II*\x00", b"MM\x00*"):
        meta.exif = EXIF_HEADER + exif
        meta.orientation = orientation(meta)
    res = resources.get(PSD_RESOLUTION, (b"", b""))[1]
    if len(res) >= 16 and not meta.dpi:
        h_res, h_unit, _, v_res, v_unit, _ = struct.unpack_from(">IHHIHH", res)
        if h_res and v_res and h_unit in (1, 2) and v_unit in (1, 2):  # stored per inch either way
            meta.dpi = (_snap(h_res / 65536), _snap(v_res / 65536))


def _snap(v: float) -> float:
    return float(round(v)) if abs(v - round(v)) < 0.01 else v


def _add_tiff_kind(meta: Metadata, read: tiff_ifd.Reader) -> None:
    meta.big_tiff = tiff_ifd.header(read)[1]


def add_file_blocks(meta: Metadata, fmt: str, read: tiff_ifd.Reader) -> None:
    """What Pillow does not read of these formats, read off the file. Never raises: a block
    that cannot be followed is simply not carried."""
    step = {"PNG": add_png_chunks, "PPM": add_pnm_comment, "GIF": add_gif_blocks, "PSD": add_psd_resources,
            "TIFF": _add_tiff_kind}.get(fmt)
    if step is None:
        return
    try:
        step(meta, read)
    except (ValueError, IndexError, struct.error, zlib.error):
        pass
