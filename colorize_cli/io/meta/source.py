"""What a scan says about itself, read off the file as stored: EXIF (for a TIFF, the page's own
tags), ICC, resolution, XMP, IPTC, the Photoshop resource block and text chunks.

Tags are kept as raw TIFF entries (`tiff_ifd`), never decoded and re-encoded, so text comes
through byte for byte and every tag keeps its type. What an output gets is decided in
`carry.py`. Resolution is reported only where the file states one with a unit: a TIFF without
resolution tags, a JPEG whose JFIF and EXIF give no unit, has none (no 72 or 1 dpi invented).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from PIL import Image

from colorize_cli.io.meta import irb
from colorize_cli.io.meta import tiff_ifd
from colorize_cli.io.meta.tiff_ifd import Directory

EXIF_HEADER = b"Exif\x00\x00"
ORIENTATION, X_RES, Y_RES, RES_UNIT = 0x0112, 0x011A, 0x011B, 0x0128
XMP_TAG, IPTC_TAG, ICC_TAG, PHOTOSHOP_TAG = 700, 33723, 34675, 34377

# IFD0 tags that describe how the *old* pixels were encoded, or blocks carried separately:
# copying them into a new file would lie about it.
STRUCTURAL_TAGS = frozenset(
    {
        254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284,
        292, 293, 301, 317, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341,
        347, 512, 513, 514, 515, 517, 518, 519, 520, 521, 529, 530, 532,
        XMP_TAG, IPTC_TAG, ICC_TAG, PHOTOSHOP_TAG, 37724,  # XMP, IPTC, ICC, Photoshop IRB, layers
        tiff_ifd.EXIF_IFD, tiff_ifd.GPS_IFD, tiff_ifd.INTEROP_IFD,  # pointers: rebuilt by the writer
    }
)  # fmt: skip


@dataclass
class Metadata:
    """Everything a scan (or one page of it) carries besides pixels, as read from the file."""

    exif: bytes | None = None  # b"Exif\0\0" + TIFF-structured EXIF, as found (may be corrupt)
    # a TIFF page's descriptive tags as read, each out-of-line value knowing its file offset
    # (its MakerNote is written there again); None for other formats, whose EXIF is `exif`
    tiff_tags: Directory | None = None
    exif_error: str | None = None  # why the EXIF could not even be gathered from the file
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None  # only when the file states a unit (inch or cm)
    xmp: bytes | None = None
    iptc: bytes | None = None  # IPTC-IIM records
    iptc_type: int | None = None  # TIFF field type of tag 33723 when the IPTC came from there
    photoshop: bytes | None = None  # the Photoshop image resource block, as stored
    text: dict[str, str] = field(default_factory=dict)  # PNG text chunks (iTXt keeps .lang/.tkey); JPEG COM as "Comment"
    orientation: int = 1  # EXIF orientation of the stored pixels, 1..8
    # a JPEG's APPn and COM segments as stored, (marker, payload) in file order, and the bytes
    # after its EOI: a JPEG output gets them back byte for byte, but for what must change
    jpeg_segments: list[tuple[int, bytes]] | None = None
    jpeg_trailer: bytes = b""
    source_format: str = ""  # the input's format (JPEG, TIFF, ...)
    # a PNG's ancillary chunks as stored, in file order (all but IHDR, PLTE, IDAT, IEND), and
    # what its bKGD means: (bit depth, colour type) of its IHDR and its PLTE
    png_chunks: list[Chunk] | None = None
    png_header: tuple[int, int] = (8, 0)
    png_palette: bytes = b""
    # a JPEG 2000 file's top-level boxes that are neither its structure nor its EXIF/XMP/IPTC
    # (XML, GeoJP2 and other uuid boxes...), as stored, and its codestream comments (COM
    # marker segments' bodies: Rcom + text)
    jp2_boxes: list[Chunk] = field(default_factory=list)
    jp2_comments: list[bytes] = field(default_factory=list)
    jp2_res: bytes = b""  # its header's resolution box (`res `: capture and display), whole, as stored
    big_tiff: bool = False  # a BigTIFF (8-byte offsets)

    @property
    def icc_color_space(self) -> str | None:
        """The profile's data colour space: "GRAY", "RGB", "CMYK", "LAB"... or None."""
        return icc_color_space(self.icc_profile)


def icc_color_space(icc: bytes | None) -> str | None:
    """A profile's data colour space: "GRAY", "RGB", "CMYK", "LAB"... or None."""
    if not icc or len(icc) < 20:
        return None
    return icc[16:20].decode("latin-1").strip().upper() or None


class Chunk(NamedTuple):
    """A chunk or box of a container, as stored: its type, its data, and whether it came after
    the pixel data (a PNG's IDAT, a JPEG 2000 file's codestream)."""

    kind: bytes
    data: bytes
    after: bool = False


class Comment(str):
    """A JPEG/GIF comment as text, remembering its bytes, so a JPEG output writes them back as
    they were (UTF-8 or Latin-1)."""

    raw: bytes

    @classmethod
    def of(cls, data: bytes) -> Comment:
        try:
            text = cls(data.decode("utf-8"))
        except UnicodeDecodeError:
            text = cls(data.decode("latin-1"))
        text.raw = bytes(data)
        return text


def one_line(err: BaseException | str) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def extract(img: Image.Image, page: Directory | None = None) -> Metadata:
    """Metadata of an opened image; `page` is a TIFF page's own IFD, read raw from the file.
    Never raises: a broken block is recorded as missing, with `exif_error` saying why for EXIF."""
    meta = Metadata(source_format=img.format or "")
    if page is not None:
        _from_tiff_page(meta, page)
    else:
        raw = img.info.get("exif")
        if raw:
            raw = bytes(raw)
            meta.exif = raw if raw.startswith(EXIF_HEADER) else EXIF_HEADER + raw
    steps: list[tuple[str, Callable[[Image.Image], object]]] = [
        ("icc_profile", lambda im: bytes(im.info["icc_profile"]) if im.info.get("icc_profile") else None),
        ("xmp", _xmp),
        ("text", _text),
    ]
    if page is None:
        steps += [("photoshop", _photoshop), ("iptc", _iptc)]
    for name, step in steps:
        try:
            value = step(img)
            if value or getattr(meta, name) is None:
                setattr(meta, name, value)
        except Exception:  # a broken block is simply not carried
            pass
    meta.orientation = _orientation(meta)
    meta.dpi = _dpi(img, meta)
    return meta


def _from_tiff_page(meta: Metadata, page: Directory) -> None:
    """A TIFF page's tags: the descriptive ones become its EXIF, the blocks are set aside."""
    tags = page.tags
    if ICC_TAG in tags:
        meta.icc_profile = tags[ICC_TAG].data
    if XMP_TAG in tags:  # trailing NULs pad a UTF-8 packet; in UTF-16/32 they may be its last character
        xmp = tags[XMP_TAG].data
        meta.xmp = (xmp.rstrip(b"\x00") if xmp_encoding(xmp) == "utf-8" else xmp) or None
    if PHOTOSHOP_TAG in tags:
        meta.photoshop = tags[PHOTOSHOP_TAG].data
        meta.iptc = irb.parse(meta.photoshop).get(irb.IPTC, (b"", b""))[1] or None
    if IPTC_TAG in tags and tags[IPTC_TAG].data:
        meta.iptc, meta.iptc_type = tags[IPTC_TAG].data, tags[IPTC_TAG].type
    kept = Directory(page.order, {t: e for t, e in tags.items() if t not in STRUCTURAL_TAGS}, page.exif, page.gps, page.interop)
    if kept.tags or kept.exif or kept.gps:
        meta.tiff_tags = kept
        meta.exif = EXIF_HEADER + tiff_ifd.exif_block(kept, pin=False)


APP13_HEADER = b"Photoshop 3.0\x00"
# XMP may be UTF-16 or UTF-32 (XMP spec part 3, 1.1.1): known by its first character, "<".
_XMP_ENCODINGS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"), (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"), (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)  # fmt: skip


def xmp_encoding(xmp: bytes) -> str:
    """"utf-8", or the UTF-16/32 an XMP packet is stored in."""
    return next((name for head, name in _XMP_ENCODINGS if xmp.startswith(head)), "utf-8")


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
        meta.orientation = _orientation(meta)
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


def _xmp(img: Image.Image) -> bytes | None:
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return bytes(xmp) if xmp else None


def _directory(meta: Metadata) -> Directory | None:
    try:
        return tiff_ifd.parse_exif(meta.exif) if meta.exif else None
    except Exception:
        return None


def _orientation(meta: Metadata) -> int:
    d = _directory(meta)
    entry = d.tags.get(ORIENTATION) if d else None
    try:
        value = int(entry.values(d.order)[0]) if entry and d else 1
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def _dpi(img: Image.Image, meta: Metadata) -> tuple[float, float] | None:
    """Dots per inch, from what the file states with a unit; None otherwise."""
    dpi: object = None
    if img.format in ("JPEG", "MPO"):
        unit, density = img.info.get("jfif_unit"), img.info.get("jfif_density")
        if unit in (1, 2) and density:
            dpi = tuple(float(v) * (2.54 if unit == 2 else 1.0) for v in density)
    elif img.format != "TIFF":
        dpi = img.info.get("dpi")
    if not dpi:
        dpi = _exif_dpi(meta)
    try:
        x, y = (float(v) for v in dpi)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if not (x > 0 and y > 0) or x != x or y != y:
        return None
    # PNG stores pixels per metre: 300 dpi reads back as 299.9994. Snap such near-integers.
    return tuple(float(round(v)) if abs(v - round(v)) < 0.01 else v for v in (x, y))  # type: ignore[return-value]


def _exif_dpi(meta: Metadata) -> tuple[float, float] | None:
    d = _directory(meta)
    if d is None or X_RES not in d.tags or Y_RES not in d.tags:
        return None
    try:
        unit = int(d.tags[RES_UNIT].values(d.order)[0]) if RES_UNIT in d.tags else 2  # TIFF's default: inch
        if unit not in (2, 3):
            return None
        (xn, xd), (yn, yd) = d.tags[X_RES].values(d.order)[0], d.tags[Y_RES].values(d.order)[0]
        scale = 2.54 if unit == 3 else 1.0
        return xn / xd * scale, yn / yd * scale
    except (ZeroDivisionError, IndexError, TypeError, ValueError, struct.error):
        return None


def _photoshop(img: Image.Image) -> bytes | None:
    resources = img.info.get("photoshop")
    if isinstance(resources, dict) and resources:
        # Pillow turns ResolutionInfo into numbers; a JPEG's resources are read raw (add_jpeg_segments)
        return irb.build({int(rid): (b"", bytes(data)) for rid, data in resources.items() if isinstance(data, bytes)})
    return None


def _iptc(img: Image.Image) -> bytes | None:
    resources = img.info.get("photoshop")
    if isinstance(resources, dict) and resources.get(irb.IPTC):
        return bytes(resources[irb.IPTC])
    return None


def _text(img: Image.Image) -> dict[str, str]:
    out: dict[str, str] = {}
    chunks = getattr(img, "text", None) if img.format == "PNG" else None
    for key, value in (chunks or {}).items():
        if key == "XML:com.adobe.xmp" or key.lower() in ("raw profile type exif", "raw profile type app1"):
            continue  # XMP is carried as such; raw EXIF dumps would be stale duplicates
        out[str(key)] = value if isinstance(value, str) else str(value)  # an iTXt keeps its lang/tkey
    comment = img.info.get("comment")
    if comment and img.format in ("JPEG", "MPO", "GIF"):
        out["Comment"] = Comment.of(comment) if isinstance(comment, bytes) else str(comment)
    return out
