"""What a scan says about itself, read off the file as stored: EXIF (for a TIFF, the page's own
tags), ICC, resolution, XMP, IPTC, the Photoshop resource block and text chunks.

Tags are kept as raw TIFF entries (`tiff_ifd`), never decoded and re-encoded, so text comes
through byte for byte and every tag keeps its type. What an output gets is decided in
`carry.py`. Resolution is reported only where the file states one with a unit: a TIFF without
resolution tags, a JPEG whose JFIF and EXIF give no unit, has none (no 72 or 1 dpi invented).
"""

from __future__ import annotations

import struct
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
    meta.orientation = orientation(meta)
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


def orientation(meta: Metadata) -> int:
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
