"""What a colorized copy carries of its original's metadata, per output format. The rule:
every tag, block and chunk of the input is written with the same type and bytes, except

* what described the old pixels (strip layout, bit depth, photometric, transfer function...),
  the EXIF/IRB thumbnails (they would show the gray original), and for a TIFF output the EXIF
  tags TIFF must not hold (ComponentsConfiguration, CompressedBitsPerPixel, PixelX/YDimension,
  InteropIndex, YCbCrPositioning: exiftool -validate flags them in a TIFF);
* Orientation, when present, becomes 1 (the pixels are turned); PixelX/YDimension become the
  output size (and are added to an Exif IFD outside TIFF, where EXIF requires them; a JPEG's
  EXIF also gets YCbCrPositioning, which EXIF requires and which is true of the new JPEG);
  Software becomes "colorize-cli <version>";
* ImageDescription gets the marker "[colorized by colorize-cli <version>, model X]" appended
  (an earlier marker is replaced, never stacked), so a caption is never lost or rewritten;
* the XMP gets the provenance description (`provenance.py`), and its tiff:Orientation reset.

Nothing is invented: no resolution where the input states none, no EXIF block in a JPEG, PNG
or WebP whose input had none (the provenance XMP says what happened). Whatever a format cannot
hold is named in a note for the manifest. Corrupt EXIF never fails an image: a note says why,
and a minimal EXIF with the marker is written instead.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

import piexif

from colorize_cli import __version__
from colorize_cli.io.meta import irb
from colorize_cli.io.meta import provenance
from colorize_cli.io.meta import tiff_ifd
from colorize_cli.io.meta.blocks import PSD_EXIF, PSD_EXIF3, PSD_ICC, PSD_XMP
from colorize_cli.io.meta.carry_png import PNG_HELD_ELSEWHERE, png_chunks
from colorize_cli.io.meta.source import (
    APP13_HEADER, EXIF_HEADER, ORIENTATION, RES_UNIT, STRUCTURAL_TAGS, X_RES, Y_RES, Chunk, Metadata, one_line,
)
from colorize_cli.io.meta.tiff_ifd import ASCII, LONG, RATIONAL, SHORT, Directory, Entry, pack

SOFTWARE = f"colorize-cli {__version__}"
JPEG_SEGMENT_MAX = 65533  # payload of one JPEG APPn segment, length field included
# How far into an EXIF block (PNG eXIf, WebP, JPEG 2000) a MakerNote may have to stand; beyond,
# the zero bytes before it would cost more than the note is worth (a TIFF page's note, far in).
_MAKER_NOTE_REACH = 1 << 20
_DESCRIPTION, _SOFTWARE = 0x010E, 0x0131
_PIXEL_X, _PIXEL_Y, _MAKER_NOTE, _YCBCR_POSITIONING = 0xA002, 0xA003, 0x927C, 0x0213
_MARKER_RE = re.compile(rb"\s*\[colorized by colorize-cli [^\]]*\]\s*$")
_XMP_ORIENT_RE = re.compile(rb'(tiff:Orientation(?:="|>))\s*[2-8]\s*(?=["<])')
# EXIF tags a TIFF must not hold (exiftool's TIFF validation), by IFD.
_NOT_IN_TIFF = {"tags": (_YCBCR_POSITIONING,), "exif": (0x9101, 0x9102, _PIXEL_X, _PIXEL_Y), "interop": (0x0001,)}
_TABLES = {"tags": "Image", "exif": "Exif", "gps": "GPS", "interop": "Interop"}


@dataclass
class Carried:
    """What an output file gets, ready for a writer, plus notes for the manifest."""

    tags: Directory | None  # IFD0 tags and EXIF sub-IFDs, raw; None: no EXIF is written
    icc_profile: bytes | None
    dpi: tuple[float, float] | None
    xmp: bytes | None  # with the provenance description
    photoshop: bytes | None  # Photoshop resource block (JPEG APP13, TIFF 34377), IPTC inside
    iptc: bytes | None  # IPTC-IIM for TIFF tag 33723 ...
    iptc_type: int | None  # ... with the field type the input gave it
    text: dict[str, str]
    notes: list[str] = field(default_factory=list)
    # a JPEG output of a JPEG input: every APPn/COM segment to write, in order, (marker, payload),
    # and the trailer after EOI (`_jpeg_segments`); None: the writer's own segments
    jpeg_segments: list[tuple[int, bytes]] | None = None
    jpeg_trailer: bytes = b""
    # a PNG output's ancillary chunks, in order (`_png_chunks`): each before or after the pixel
    # data; a bKGD's data is always 16-bit RGB here, which the writer fits to its bit depth
    png_chunks: list[Chunk] | None = None
    # a JPEG 2000 output's other boxes and codestream comments, as the input had them
    jp2_boxes: list[Chunk] = field(default_factory=list)
    jp2_comments: list[bytes] = field(default_factory=list)
    jp2_res: bytes = b""  # a JPEG 2000 input's resolution box, whole
    big_tiff: bool = False  # a TIFF output of a BigTIFF input is a BigTIFF

    @property
    def exif(self) -> bytes | None:
        """b"Exif\\0\\0" + the TIFF-structured EXIF block, as JPEG, PNG and WebP hold it."""
        return EXIF_HEADER + tiff_ifd.exif_block(self.tags) if self.tags else None

    def save_kwargs(self, fmt: str) -> dict:
        """Keyword arguments for Pillow's `save` for the formats Pillow writes here."""
        kw: dict = {}
        if fmt in ("JPEG", "WEBP"):
            for key in ("exif", "icc_profile", "xmp"):
                value = getattr(self, key)
                if value:
                    kw[key] = value
        if fmt == "JPEG" and "Comment" in self.text:
            comment = self.text["Comment"]
            kw["comment"] = getattr(comment, "raw", None) or comment.encode("utf-8")
        if self.dpi and fmt in ("JPEG", "BMP"):
            kw["dpi"] = self.dpi
        return kw


def colorized_marker(model_name: str) -> str:
    return f"[colorized by {SOFTWARE}, model {model_name or 'unknown'}]"


def tag_name(ifd: str, tag: int) -> str:
    return piexif.TAGS.get(_TABLES.get(ifd, ifd), {}).get(tag, {}).get("name", f"0x{tag:04x}")


def carry(
    meta: Metadata, fmt: str, width: int, height: int, model_name: str, icc: bytes | None = None,
    origin: provenance.Provenance | None = None,
) -> Carried:
    """Decide what an output of `fmt` (JPEG, PNG, TIFF, WEBP, JPEG2000, BMP) and this size
    carries. `icc` is the profile the pixels are in (the input's own RGB profile, when the
    writer kept it); by default they are sRGB and tagged so."""
    from colorize_cli.io.meta.icc import srgb_profile  # noqa: PLC0415 - icc imports this package's metadata

    fmt = fmt.upper()
    notes: list[str] = []
    origin = origin or provenance.Provenance(model_name=model_name)
    if fmt == "BMP":
        held = (("EXIF", meta.exif), ("ICC", True), ("XMP", meta.xmp), ("IPTC", meta.iptc), ("text", meta.text),
                ("provenance XMP", True))
        dropped = [name for name, value in held if value]
        notes.append(f"metadata not written: BMP cannot hold {', '.join(dropped)}")
        return Carried(None, None, meta.dpi, None, None, None, None, {}, notes)

    tags = _carry_tags(meta, fmt, width, height, origin.model_name, notes)
    if tags is not None and fmt == "JPEG":
        tags = _fit_jpeg(tags, notes)

    source_xmp = meta.xmp if fmt == "JPEG" else _with_extended_xmp(meta, notes)  # a JPEG keeps its segments
    xmp = provenance.merge(_XMP_ORIENT_RE.sub(rb"\g<1>1", source_xmp) if source_xmp else None, origin, notes)
    if fmt == "JPEG" and len(xmp) + 31 > JPEG_SEGMENT_MAX:
        notes.append(f"XMP dropped: {len(xmp)} bytes is too long for one JPEG segment; only the provenance is written")
        xmp = provenance.merge(None, origin, notes)

    photoshop, iptc, iptc_type = None, None, None
    if fmt == "JPEG":
        photoshop = irb.carried(meta.photoshop, meta.iptc)  # in as many APP13 segments as it needs
    elif fmt == "TIFF":
        moved: frozenset[int] = frozenset()
        if meta.iptc_type is not None:
            iptc, iptc_type = meta.iptc, meta.iptc_type
        elif meta.source_format == "PSD":
            # a PSD's IPTC, XMP, EXIF and ICC profile are resources; a TIFF holds each in a tag of
            # its own (IPTC in 33723, where exiftool looks for it, as the LONGs Photoshop writes)
            moved = _PSD_MOVED | {irb.IPTC}
            if meta.iptc:
                iptc, iptc_type = meta.iptc, LONG
        photoshop = irb.carried(meta.photoshop, None if iptc_type is not None else meta.iptc, moved)
        if moved and iptc and len(iptc) % 4:
            photoshop = irb.with_digest(photoshop, iptc, iptc + b"\x00" * (-len(iptc) % 4))
    else:
        if fmt == "JPEG2000" and meta.iptc:  # an IPTC uuid box
            photoshop = irb.carried(None, meta.iptc)
        elif meta.iptc:
            notes.append(f"IPTC dropped: {fmt} has no IPTC block")
        if set(irb.parse(meta.photoshop or b"")) - {irb.IPTC} - irb.THUMBNAILS - _PSD_MOVED:
            notes.append(f"Photoshop resources dropped: {fmt} has no place for them")

    text = dict(meta.text)
    if fmt != "PNG":
        kept = {"Comment"} if fmt == "JPEG" else set()
        dropped_keys = sorted(k for k in text if k not in kept)
        if dropped_keys:
            notes.append(f"text chunks dropped: {', '.join(dropped_keys)} ({fmt} has no text chunks)")
        text = {k: v for k, v in text.items() if k in kept}

    out = Carried(tags, icc or srgb_profile(), meta.dpi, xmp, photoshop, iptc, iptc_type, text, notes)
    if fmt == "JPEG" and meta.jpeg_segments is not None:
        out.jpeg_segments, out.jpeg_trailer = jpeg_segments(meta, out, notes)
    if fmt == "PNG":
        out.png_chunks = png_chunks(meta, out, notes, srgb=icc is None)
    elif meta.png_chunks:
        gone = sorted({c.kind.decode("latin-1") for c in meta.png_chunks if c.kind not in PNG_HELD_ELSEWHERE})
        if gone:
            notes.append(f"PNG chunks dropped: {', '.join(gone)} ({fmt} has no place for them)")
    out.big_tiff = fmt == "TIFF" and meta.big_tiff
    if fmt == "JPEG2000":
        out.jp2_boxes, out.jp2_comments, out.jp2_res = list(meta.jp2_boxes), list(meta.jp2_comments), meta.jp2_res
    else:
        gone = sorted({c.kind.decode("latin-1").strip() for c in meta.jp2_boxes})
        if gone:
            notes.append(f"JPEG 2000 boxes dropped: {', '.join(gone)} ({fmt} has no place for them)")
        if meta.jp2_comments:
            notes.append(f"JPEG 2000 codestream comments dropped: {len(meta.jp2_comments)} "
                         f"({fmt} has no place for them)")
    return out


_HAS_EXTENDED = re.compile(rb"""\s*<xmpNote:HasExtendedXMP>\s*([0-9A-Fa-f]{32})\s*</xmpNote:HasExtendedXMP>"""
                           rb"""|\s+xmpNote:HasExtendedXMP=["']([0-9A-Fa-f]{32})["']""")


def _with_extended_xmp(meta: Metadata, notes: list[str]) -> bytes | None:
    """A JPEG's XMP with its extended part (what did not fit in one segment, in APP1 segments
    of its own, XMP spec part 3, 1.1.3.1) merged back in, for a format that holds a packet of
    any size; the main packet's pointer to it (xmpNote:HasExtendedXMP) goes, as it points at
    nothing in the copy."""
    xmp = meta.xmp
    found = _HAS_EXTENDED.search(xmp or b"")
    if not xmp or not found or not meta.jpeg_segments:
        return xmp
    guid = (found.group(1) or found.group(2)).upper()
    parts: dict[int, bytes] = {}
    total = 0
    for marker, payload in meta.jpeg_segments:
        head = len(_XMP_EXT_ID)
        if marker == 0xE1 and payload.startswith(_XMP_EXT_ID) and payload[head : head + 32].upper() == guid:
            total, offset = struct.unpack_from(">II", payload, head + 32)
            parts[offset] = payload[head + 40 :]
    extended, at = bytearray(), 0
    for offset in sorted(parts):
        if offset != at:
            break
        extended += parts[offset]
        at += len(parts[offset])
    start, end = extended.find(b"<rdf:RDF"), extended.rfind(b"</rdf:RDF>")
    inner_at = extended.find(b">", start) + 1 if start >= 0 else 0
    main_end = xmp.rfind(b"</rdf:RDF>")
    if not parts or len(extended) != total or start < 0 or end < inner_at or main_end < 0:
        notes.append("extended XMP dropped: its JPEG segments are incomplete")
        return xmp
    merged = _HAS_EXTENDED.sub(b"", xmp[:main_end]) + bytes(extended[inner_at:end]) + xmp[main_end:]
    if not provenance.well_formed(merged):
        notes.append("extended XMP dropped: it does not merge into a well-formed packet")
        return xmp
    return merged


_PSD_MOVED = frozenset({PSD_ICC, PSD_EXIF, PSD_EXIF3, PSD_XMP})
_XMP_ID, _XMP_EXT_ID = b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00"
_ICC_ID, _MPF_ID = b"ICC_PROFILE\x00", b"MPF\x00"
_MAX_PAYLOAD = JPEG_SEGMENT_MAX - 2  # a segment's payload, without its length field


def _segment_kind(marker: int, payload: bytes) -> str:
    for kind, m, head in (("jfif", 0xE0, b"JFIF\x00"), ("jfxx", 0xE0, b"JFXX\x00"), ("exif", 0xE1, EXIF_HEADER),
                          ("xmp", 0xE1, _XMP_ID), ("icc", 0xE2, _ICC_ID), ("mpf", 0xE2, _MPF_ID),
                          ("photoshop", 0xED, APP13_HEADER), ("adobe", 0xEE, b"Adobe")):
        if marker == m and payload.startswith(head):
            return kind
    return "other"


def jpeg_chunks(marker: int, head: bytes, data: bytes, numbered: bool = False) -> list[tuple[int, bytes]]:
    """`data` in as many segments as it needs, each led by `head` (ICC's also by its chunk
    number and count)."""
    room = _MAX_PAYLOAD - len(head) - (2 if numbered else 0)
    parts = [data[i : i + room] for i in range(0, len(data), room)] or [b""]
    if numbered:
        return [(marker, head + bytes([i + 1, len(parts)]) + part) for i, part in enumerate(parts)]
    return [(marker, head + part) for part in parts]


def jpeg_segments(meta: Metadata, c: Carried, notes: list[str]) -> tuple[list[tuple[int, bytes]], bytes]:
    """A JPEG input's own segments for its JPEG output: each byte for byte, in its place, but for
    what must change: EXIF, XMP, ICC and Photoshop resources become the carried ones (in the
    first such segment's place; added after the leading APP0/APP1 segments when the input had
    none), the JFIF and JFXX thumbnails and the MPF index go (they describe gray pixels or
    images not written), and the Adobe segment's colour transform says YCbCr, as the new
    codestream is. The trailer after EOI is kept, but for an MPO's other images."""
    ours = {
        "exif": [(0xE1, c.exif)] if c.exif else [],
        "xmp": [(0xE1, _XMP_ID + c.xmp)] if c.xmp else [],
        "icc": jpeg_chunks(0xE2, _ICC_ID, c.icc_profile, numbered=True) if c.icc_profile else [],
        "photoshop": jpeg_chunks(0xED, APP13_HEADER, c.photoshop) if c.photoshop else [],
    }
    out: list[tuple[int, bytes]] = []
    placed: set[str] = set()
    trailer = meta.jpeg_trailer
    for marker, payload in meta.jpeg_segments or []:
        if marker == 0:
            notes.append(f"{len(payload)} stray bytes between the input's JPEG segments (no part of any) dropped")
            continue
        kind = _segment_kind(marker, payload)
        if kind in ("icc", "photoshop") or (kind in ours and kind not in placed):
            if kind not in placed:
                out += ours[kind]
                placed.add(kind)
            continue  # an ICC profile's or resource block's later chunks are part of it
        if kind == "jfif" and len(payload) >= 14 and payload[12] and payload[13]:
            payload = payload[:12] + b"\x00\x00"
            notes.append("JFIF thumbnail dropped (it showed the gray original)")
        elif kind == "jfxx":
            notes.append("JFXX thumbnail segment dropped (it showed the gray original)")
            continue
        elif kind == "mpf":
            if trailer:
                notes.append(f"MPF index and the {len(trailer)} bytes after the first image (the other images "
                             "of the MPO, not colorized) dropped")
            trailer = b""
            continue
        elif kind == "adobe" and len(payload) >= 12:
            payload = payload[:11] + b"\x01" + payload[12:]  # ColorTransform: YCbCr, as written
        out.append((marker, payload))
    at = 0
    while at < len(out) and out[at][0] in (0xE0, 0xE1):
        at += 1
    missing = [seg for kind in ("exif", "xmp", "icc", "photoshop") if kind not in placed for seg in ours[kind]]
    out[at:at] = missing
    return out, trailer


def _ascii(order: str, text: bytes) -> Entry:
    return pack(order, ASCII, text)


def _carry_tags(meta: Metadata, fmt: str, width: int, height: int, model_name: str, notes: list[str]) -> Directory | None:
    d: Directory | None = None
    fresh = False
    if meta.exif_error:
        notes.append(f"EXIF dropped: {meta.exif_error}")
        fresh = True
    elif meta.tiff_tags is not None:
        d = meta.tiff_tags
    elif meta.exif:
        try:
            d = tiff_ifd.parse_exif(meta.exif)
        except Exception as err:
            notes.append(f"EXIF dropped: corrupt ({one_line(err)})")
            fresh = True
    if d is None:
        if not fresh and fmt != "TIFF":
            return None  # nothing to carry: the provenance XMP says what happened
        d = Directory(">")
        if fresh:  # what colorize-cli knows, so the copy still says what it is
            d.tags[ORIENTATION] = pack(">", SHORT, 1)
            if fmt != "TIFF":
                d.exif = {_PIXEL_X: pack(">", LONG, width), _PIXEL_Y: pack(">", LONG, height)}
    order = d.order
    tags = {t: e for t, e in d.tags.items() if t not in STRUCTURAL_TAGS}
    if ORIENTATION in tags:
        tags[ORIENTATION] = pack(order, SHORT, 1)
    tags[_SOFTWARE] = _ascii(order, SOFTWARE.encode("ascii"))
    old = tags[_DESCRIPTION].data if _DESCRIPTION in tags else b""
    if is_shape_description(old):
        notes.append("ImageDescription replaced: it held tifffile's array shape of the gray input, which the colour output does not have")
        old = b""
    tags[_DESCRIPTION] = _ascii(order, mark_description(old, model_name))
    if X_RES not in tags and meta.dpi:  # the input stated a resolution outside EXIF (JFIF, pHYs)
        tags[X_RES] = pack(order, RATIONAL, [rational(meta.dpi[0])])
        tags[Y_RES] = pack(order, RATIONAL, [rational(meta.dpi[1])])
        tags[RES_UNIT] = pack(order, SHORT, 2)
    if fmt == "JPEG" and _YCBCR_POSITIONING not in tags:  # EXIF requires it in a JPEG: true of ours
        tags[_YCBCR_POSITIONING] = pack(order, SHORT, 1)  # centred, as JFIF decoders assume
    exif = dict(d.exif)
    for tag, value in ((_PIXEL_X, width), (_PIXEL_Y, height)):
        if tag in exif or (exif and fmt != "TIFF"):  # JPEG's EXIF requires them (EXIF 2.3, 4.6.5)
            kind = SHORT if tag in exif and exif[tag].type == SHORT and value < 65536 else LONG
            exif[tag] = pack(order, kind, value)
    out = Directory(order, tags, exif, dict(d.gps), dict(d.interop))
    origin = tiff_ifd.maker_note_origin(out)
    if origin and fmt not in ("TIFF", "JPEG") and sum(origin) > _MAKER_NOTE_REACH:
        del out.exif[_MAKER_NOTE]  # a JPEG's segment limit is _fit_jpeg's to judge
        notes.append(f"EXIF MakerNote dropped: its offsets need it {origin[0]} bytes into the EXIF block "
                     f"(where it stood in the input), which would pad the {fmt} file with that many bytes")
    if fmt == "TIFF":
        dropped = [tag_name(ifd, t) for ifd, ts in _NOT_IN_TIFF.items() for t in ts if getattr(out, ifd).pop(t, None)]
        if dropped:
            notes.append(f"EXIF tags TIFF does not hold dropped: {', '.join(dropped)}")
    return out


def is_shape_description(caption: bytes) -> bool:
    """tifffile's own JSON description ({"shape": [...], ...}): it states the input array's shape,
    and kept on a colour output it makes tifffile read that output with the gray shape (an error)."""
    return caption.lstrip().startswith(b'{"shape":')


def mark_description(old: bytes, model_name: str) -> bytes:
    """Append the colorization marker to an existing caption, replacing an older marker; the
    caption's own bytes (UTF-8, Latin-1...) are kept as they are."""
    caption = _MARKER_RE.sub(b"", old.rstrip(b"\x00")).rstrip(b"\x00")
    marker = colorized_marker(model_name).encode("ascii", "replace")
    return caption + b" " + marker if caption.strip() else marker


def rational(value: float) -> tuple[int, int]:
    """A positive number as an EXIF RATIONAL (exact for integers, else to 1/1000)."""
    denominator = 1 if float(value).is_integer() else 1000
    return int(round(value * denominator)), denominator


def _fit_jpeg(d: Directory, notes: list[str]) -> Directory | None:
    """A JPEG APP1 segment holds 64 KiB; a maker note is the usual culprit, so it goes first."""
    if len(tiff_ifd.exif_block(d)) + 8 <= JPEG_SEGMENT_MAX:
        return d
    origin = tiff_ifd.maker_note_origin(d)
    if d.exif.pop(_MAKER_NOTE, None) is not None and len(tiff_ifd.exif_block(d)) + 8 <= JPEG_SEGMENT_MAX:
        if origin and origin[1] + 64 < JPEG_SEGMENT_MAX < sum(origin) + 8:  # it fits, but not where it must stand
            notes.append(f"EXIF MakerNote dropped: its offsets need it {origin[0]} bytes into the EXIF block "
                         "(where it stood in the input), past the end of a JPEG segment")
        else:
            notes.append("EXIF MakerNote dropped: EXIF too long for a JPEG segment")
        return d
    notes.append(f"EXIF dropped: {len(tiff_ifd.exif_block(d)) + 6} bytes is too long for a JPEG segment")
    return None
