"""What an archive scan says about itself, and how that survives into the colorized copy.

`extract` reads EXIF, ICC, resolution, XMP, IPTC and text chunks off a decoded Pillow image
(before its pixels are turned upright); `carry` decides what the output file gets. The rules:

* EXIF: every tag is kept (0th, Exif, GPS, Interop IFDs; as in piexif's tables, which cover
  EXIF 2.3, TIFF 6 and DNG), except what describes the old pixel encoding (strip layout, bit
  depth, photometric, transfer function...) and the embedded thumbnail, which would show the
  gray original. Orientation becomes 1 (the pixels are already turned), PixelXDimension and
  PixelYDimension are set to the output size, Software becomes "colorize-cli <version>".
  A TIFF scan's own tags (Make, Artist, DateTime...) count as its EXIF.
* The fact of colorization goes into ImageDescription, appended in brackets so an archivist's
  caption is never lost or rewritten: "Harbour, 1931 [colorized by colorize-cli 0.1.0, model X]".
  ImageDescription is the one tag every viewer and DAM shows; UserComment is often hidden and
  XMP would mean rewriting XML. A marker left by an earlier run is replaced, not stacked.
* Corrupt EXIF never fails an image: it is left out and a note says why. A tag piexif cannot
  re-encode is left out alone, again with a note.
* ICC: the output pixels are sRGB by construction (the colour maths in `color.py` is sRGB), so
  the output is always tagged sRGB. A gray profile could not describe RGB pixels anyway; an RGB
  input profile was already used by `imaging.read_scan` to bring the pixels into sRGB.
* DPI, XMP (with tiff:Orientation reset), IPTC (JPEG APP13, TIFF ImageResources) and PNG text are
  carried where the output format can hold them; anything dropped gets a note.
"""

from __future__ import annotations

import functools
import io
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import piexif
from PIL import Image, ImageCms

from colorize_cli import __version__

SOFTWARE = f"colorize-cli {__version__}"

EXIF_HEADER = b"Exif\x00\x00"
_EXIF_IFD, _GPS_IFD, _INTEROP_IFD = 0x8769, 0x8825, 0xA005
_ORIENTATION, _DESCRIPTION, _SOFTWARE = 0x0112, 0x010E, 0x0131
_X_RES, _Y_RES, _RES_UNIT = 0x011A, 0x011B, 0x0128
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
_XMP_TAG, _IPTC_TAG, _ICC_TAG, _PHOTOSHOP_TAG = 700, 33723, 34675, 34377
_PHOTOSHOP_IPTC = 0x0404

# IFD0 tags that describe how the *old* pixels were encoded, or blocks carried separately:
# copying them into a new file would lie about it.
STRUCTURAL_TAGS = frozenset(
    {
        254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284,
        292, 293, 301, 317, 318, 319, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341,
        347, 512, 513, 514, 515, 517, 518, 519, 520, 521, 529, 530, 532,
        _XMP_TAG, _IPTC_TAG, _ICC_TAG, _PHOTOSHOP_TAG, 37724,  # XMP, IPTC, ICC, Photoshop IRB, layers
        _EXIF_IFD, _GPS_IFD, _INTEROP_IFD,  # pointers: rebuilt by the writer
    }
)  # fmt: skip

_MARKER_RE = re.compile(rb"\s*\[colorized by colorize-cli [^\]]*\]\s*$")
_XMP_ORIENT_RE = re.compile(rb'(tiff:Orientation(?:="|>))\s*[2-8]\s*(?=["<])')

JPEG_SEGMENT_MAX = 65533  # payload of one JPEG APPn segment, length field included


@dataclass
class Metadata:
    """Everything a scan carries besides pixels, as read from the file."""

    exif: bytes | None = None  # b"Exif\0\0" + TIFF-structured EXIF, as found (may be corrupt)
    exif_error: str | None = None  # why the EXIF could not even be gathered from the file
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None
    xmp: bytes | None = None
    iptc: bytes | None = None  # IPTC-IIM records (the payload of Photoshop resource 0x0404)
    text: dict[str, str] = field(default_factory=dict)  # PNG text chunks; a JPEG COM as "Comment"
    orientation: int = 1  # EXIF orientation of the stored pixels, 1..8

    @property
    def icc_color_space(self) -> str | None:
        """The profile's data colour space: "GRAY", "RGB", "CMYK", "LAB"... or None."""
        return icc_color_space(self.icc_profile)


@dataclass
class Carried:
    """What an output file gets, ready for a writer, plus notes for the manifest."""

    exif: bytes | None  # b"Exif\0\0" + TIFF-structured EXIF
    icc_profile: bytes | None
    dpi: tuple[float, float] | None
    xmp: bytes | None
    iptc: bytes | None
    text: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def save_kwargs(self, fmt: str) -> dict:
        """Keyword arguments for Pillow's `save` for the formats Pillow writes here."""
        kw: dict = {}
        if fmt in ("JPEG", "WEBP"):
            for key in ("exif", "icc_profile", "xmp"):
                value = getattr(self, key)
                if value:
                    kw[key] = value
        if fmt == "JPEG" and "Comment" in self.text:
            kw["comment"] = self.text["Comment"].encode("utf-8")
        if self.dpi and fmt in ("JPEG", "BMP"):
            kw["dpi"] = self.dpi
        return kw


def icc_color_space(icc: bytes | None) -> str | None:
    if not icc or len(icc) < 20:
        return None
    return icc[16:20].decode("latin-1").strip().upper() or None


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """The sRGB profile every output is tagged with (built by LittleCMS, so no file is shipped).

    LittleCMS stamps the profile with the time it was made; a fixed date (and no profile ID,
    which covers the date) keeps outputs byte-identical from one run to the next."""
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[24:36] = struct.pack(">6H", 2026, 1, 1, 0, 0, 0)  # ICC header: creation date and time
    icc[84:100] = bytes(16)  # profile ID: all zeros means "not computed"
    return bytes(icc)


def one_line(err: BaseException | str) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


# --------------------------------------------------------------------------------------- reading


def extract(img: Image.Image) -> Metadata:
    """Metadata of an opened (not necessarily decoded) image. Never raises: a broken block is
    recorded as missing, with `exif_error` saying why for EXIF."""
    meta = Metadata()
    steps: list[tuple[str, Callable[[Image.Image], object]]] = [
        ("orientation", _orientation),
        ("icc_profile", lambda im: bytes(im.info["icc_profile"]) if im.info.get("icc_profile") else None),
        ("dpi", _dpi),
        ("xmp", _xmp),
        ("iptc", _iptc),
        ("text", _text),
    ]
    meta.exif, meta.exif_error = _gather_exif(img)
    for name, step in steps:
        try:
            setattr(meta, name, step(img))
        except Exception:  # a broken block is simply not carried
            pass
    return meta


def _xmp(img: Image.Image) -> bytes | None:
    xmp = img.info.get("xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return bytes(xmp) if xmp else None


def _gather_exif(img: Image.Image) -> tuple[bytes | None, str | None]:
    raw = img.info.get("exif")
    if raw:
        raw = bytes(raw)
        return (raw if raw.startswith(EXIF_HEADER) else EXIF_HEADER + raw), None
    if img.format != "TIFF":
        return None, None
    # In a TIFF the EXIF *is* the file's own first IFD: keep its descriptive tags only, typed
    # by the EXIF tables (as piexif does for JPEG EXIF; tags those tables do not know are left out).
    try:
        tags = img.getexif()
        sources = {
            "0th": {k: v for k, v in tags.items() if k not in STRUCTURAL_TAGS},
            "Exif": tags.get_ifd(_EXIF_IFD),
            "GPS": tags.get_ifd(_GPS_IFD),
            "Interop": tags.get_ifd(_INTEROP_IFD),
        }
        d = _empty_exif()
        for ifd, values in sources.items():
            table = piexif.TAGS["Image" if ifd == "0th" else ifd]
            for tag, value in values.items():
                if tag in table and tag not in (_EXIF_IFD, _GPS_IFD, _INTEROP_IFD):
                    d[ifd][tag] = _as_piexif(value, table[tag]["type"])
        if not any(d[ifd] for ifd in sources):
            return None, None
        return piexif.dump(d), None
    except Exception as err:  # any parse failure: the image still goes through
        return None, f"unreadable ({one_line(err)})"


def _as_piexif(value: object, kind: int) -> object:
    """A value as Pillow parsed it -> the Python form piexif.dump wants for that EXIF type."""
    items = value if isinstance(value, tuple) else (value,)
    if kind == piexif.TYPES.Ascii:
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)  # type: ignore[arg-type]
    if kind in (piexif.TYPES.Undefined, piexif.TYPES.Byte):
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if isinstance(value, str):
            return value.encode("latin-1", "replace")
        return bytes(int(v) & 0xFF for v in items)  # type: ignore[union-attr]
    if kind in (piexif.TYPES.Rational, piexif.TYPES.SRational):
        pairs = tuple(_as_fraction(v) for v in items)
        return pairs[0] if len(pairs) == 1 else pairs
    if kind in (piexif.TYPES.Float, piexif.TYPES.DFloat):
        return float(items[0]) if len(items) == 1 else tuple(float(v) for v in items)  # type: ignore[arg-type]
    ints = tuple(int(v) for v in items)  # type: ignore[call-overload]
    return ints[0] if len(ints) == 1 else ints


def _as_fraction(v: object) -> tuple[int, int]:
    numerator, denominator = getattr(v, "numerator", None), getattr(v, "denominator", None)
    if isinstance(numerator, int) and isinstance(denominator, int) and denominator:
        return numerator, denominator
    return rational(float(v))  # type: ignore[arg-type]


def _orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(_ORIENTATION, 1))
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def _dpi(img: Image.Image) -> tuple[float, float] | None:
    dpi = img.info.get("dpi")
    if not dpi:
        try:  # JPEGs whose JFIF header holds only an aspect ratio may still have EXIF dpi
            exif = img.getexif()
            unit = exif.get(_RES_UNIT, 2)
            if _X_RES in exif and _Y_RES in exif and unit in (2, 3):
                scale = 2.54 if unit == 3 else 1.0
                dpi = (float(exif[_X_RES]) * scale, float(exif[_Y_RES]) * scale)
        except Exception:
            return None
    try:
        x, y = (float(v) for v in dpi)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if not (x > 0 and y > 0) or x != x or y != y:
        return None
    # PNG stores pixels per metre: 300 dpi reads back as 299.9994. Snap such near-integers.
    return tuple(float(round(v)) if abs(v - round(v)) < 0.01 else v for v in (x, y))  # type: ignore[return-value]


def _iptc(img: Image.Image) -> bytes | None:
    photoshop = img.info.get("photoshop")
    if isinstance(photoshop, dict) and photoshop.get(_PHOTOSHOP_IPTC):
        return bytes(photoshop[_PHOTOSHOP_IPTC])
    tag_v2 = getattr(img, "tag_v2", None)
    if tag_v2 is not None and isinstance(tag_v2.get(_PHOTOSHOP_TAG), bytes):
        iptc = parse_irb(tag_v2[_PHOTOSHOP_TAG]).get(_PHOTOSHOP_IPTC)
        if iptc:
            return iptc
    if tag_v2 is not None and _IPTC_TAG in tag_v2:
        value = tag_v2[_IPTC_TAG]
        if isinstance(value, (bytes, bytearray)):
            return bytes(value) or None
        try:  # some writers store IPTC as LONGs; the bytes are what matter
            endian = "<" if tag_v2.prefix == b"II" else ">"
            return struct.pack(f"{endian}{len(value)}L", *value) or None
        except (TypeError, struct.error):
            return None
    return None


def _text(img: Image.Image) -> dict[str, str]:
    out: dict[str, str] = {}
    chunks = getattr(img, "text", None) if img.format == "PNG" else None
    for key, value in (chunks or {}).items():
        if key == "XML:com.adobe.xmp" or key.lower() in ("raw profile type exif", "raw profile type app1"):
            continue  # XMP is carried as such; raw EXIF dumps would be stale duplicates
        out[str(key)] = str(value)
    comment = img.info.get("comment")
    if comment and img.format in ("JPEG", "MPO", "GIF"):
        out["Comment"] = comment.decode("utf-8", "replace") if isinstance(comment, bytes) else str(comment)
    return out


# --------------------------------------------------------------------------------------- writing


def colorized_marker(model_name: str) -> str:
    return f"[colorized by {SOFTWARE}, model {model_name or 'unknown'}]"


def carry(meta: Metadata, fmt: str, width: int, height: int, model_name: str, icc: bytes | None = None) -> Carried:
    """Decide what an output of `fmt` (JPEG, PNG, TIFF, WEBP, BMP) and this size carries.
    `icc` is the profile the pixels are in (the input's own RGB profile, when the writer kept
    it); by default they are sRGB and tagged so."""
    fmt = fmt.upper()
    notes: list[str] = []
    if fmt == "BMP":
        held = (("EXIF", meta.exif), ("ICC", True), ("XMP", meta.xmp), ("IPTC", meta.iptc), ("text", meta.text))
        dropped = [name for name, value in held if value]
        notes.append(f"metadata not written: BMP cannot hold {', '.join(dropped)}")
        return Carried(None, None, meta.dpi, None, None, {}, notes)

    exif = _carry_exif(meta, width, height, model_name, notes)
    if fmt == "JPEG" and exif and len(exif) + 2 > JPEG_SEGMENT_MAX:
        exif = _shrink_for_jpeg(exif, notes)

    xmp = _reset_xmp_orientation(meta.xmp) if meta.xmp else None
    if xmp and fmt == "JPEG" and len(xmp) + 31 > JPEG_SEGMENT_MAX:
        notes.append(f"XMP dropped: {len(xmp)} bytes is too long for one JPEG segment")
        xmp = None

    iptc = meta.iptc
    if iptc and fmt not in ("JPEG", "TIFF"):
        notes.append(f"IPTC dropped: {fmt} has no IPTC block")
        iptc = None
    if iptc and fmt == "JPEG" and len(photoshop_irb(iptc)) + 16 > JPEG_SEGMENT_MAX:
        notes.append(f"IPTC dropped: {len(iptc)} bytes is too long for one JPEG segment")
        iptc = None

    text = dict(meta.text)
    if fmt != "PNG":
        kept = {"Comment"} if fmt == "JPEG" else set()
        dropped_keys = sorted(k for k in text if k not in kept)
        if dropped_keys:
            notes.append(f"text chunks dropped: {', '.join(dropped_keys)} ({fmt} has no text chunks)")
        text = {k: v for k, v in text.items() if k in kept}

    return Carried(exif, icc or srgb_profile(), meta.dpi, xmp, iptc, text, notes)


def _empty_exif() -> dict:
    return {"0th": {}, "Exif": {}, "GPS": {}, "Interop": {}, "1st": {}, "thumbnail": None}


def _carry_exif(meta: Metadata, width: int, height: int, model_name: str, notes: list[str]) -> bytes | None:
    d = _empty_exif()
    if meta.exif_error:
        notes.append(f"EXIF dropped: {meta.exif_error}")
    elif meta.exif:
        body = meta.exif[len(EXIF_HEADER) :] if meta.exif.startswith(EXIF_HEADER) else meta.exif
        try:
            if body[:4] not in (b"II*\x00", b"MM\x00*"):
                raise ValueError("no TIFF header")
            d = piexif.load(meta.exif)
        except Exception as err:
            notes.append(f"EXIF dropped: corrupt ({one_line(err)})")
            d = _empty_exif()

    zeroth = {k: v for k, v in d.get("0th", {}).items() if k not in STRUCTURAL_TAGS}
    zeroth[_ORIENTATION] = 1
    zeroth[_SOFTWARE] = SOFTWARE.encode("ascii")
    zeroth[_DESCRIPTION] = _mark_description(zeroth.get(_DESCRIPTION), model_name)
    if meta.dpi:
        zeroth[_X_RES] = rational(meta.dpi[0])
        zeroth[_Y_RES] = rational(meta.dpi[1])
        zeroth[_RES_UNIT] = 2
    exif_ifd = {k: v for k, v in d.get("Exif", {}).items() if k != _INTEROP_IFD}
    exif_ifd[_PIXEL_X] = int(width)
    exif_ifd[_PIXEL_Y] = int(height)
    clean = {
        "0th": zeroth,
        "Exif": exif_ifd,
        "GPS": dict(d.get("GPS") or {}),
        "Interop": dict(d.get("Interop") or {}),
        "1st": {},
        "thumbnail": None,  # the stale gray thumbnail is never carried
    }
    return _dump_tolerant(clean, notes)


def _mark_description(old: object, model_name: str) -> bytes:
    """Append the colorization marker to an existing caption, replacing an older marker."""
    if isinstance(old, str):
        old = old.encode("utf-8")
    caption = _MARKER_RE.sub(b"", old if isinstance(old, bytes) else b"").rstrip(b"\x00")
    marker = colorized_marker(model_name).encode("ascii", "replace")
    return caption + b" " + marker if caption.strip() else marker


def rational(value: float) -> tuple[int, int]:
    """A positive number as an EXIF RATIONAL (exact for integers, else to 1/1000)."""
    denominator = 1 if float(value).is_integer() else 1000
    return int(round(value * denominator)), denominator


def _dump_tolerant(d: dict, notes: list[str]) -> bytes | None:
    """piexif.dump, leaving out single tags it cannot encode instead of losing all of EXIF."""
    try:
        return sort_ifd_entries(piexif.dump(d))
    except Exception as err:
        first_error = one_line(err)
    for ifd in ("0th", "Exif", "GPS", "Interop"):
        for tag in list(d[ifd]):
            probe = _empty_exif()
            probe[ifd] = {tag: d[ifd][tag]}
            try:
                piexif.dump(probe)
            except Exception as err:
                name = piexif.TAGS.get(ifd if ifd != "0th" else "Image", {}).get(tag, {}).get("name", str(tag))
                notes.append(f"EXIF tag {name} dropped: {one_line(err)}")
                del d[ifd][tag]
    try:
        return sort_ifd_entries(piexif.dump(d))
    except Exception as err:
        notes.append(f"EXIF dropped: cannot re-encode ({first_error}; {one_line(err)})")
        return None


def sort_ifd_entries(tiff: bytes) -> bytes:
    """piexif writes the sub-IFD pointers after all other tags; TIFF wants every IFD sorted by
    tag (libtiff warns, strict readers refuse). Entries hold absolute offsets, so sorting them
    in place is safe. Accepts TIFF-structured bytes with or without b"Exif\\0\\0"."""
    skip = len(EXIF_HEADER) if tiff.startswith(EXIF_HEADER) else 0
    data = bytearray(tiff)
    endian = ">" if data[skip : skip + 2] == b"MM" else "<"
    pending = [(struct.unpack_from(endian + "I", data, skip + 4)[0], 0)]
    seen: set[int] = set()
    while pending:
        offset, owner = pending.pop()
        start = skip + offset
        if offset == 0 or offset in seen or start + 2 > len(data):
            continue
        seen.add(offset)
        (count,) = struct.unpack_from(endian + "H", data, start)
        end = start + 2 + 12 * count
        if end > len(data):
            continue
        entries = [bytes(data[start + 2 + 12 * i : start + 14 + 12 * i]) for i in range(count)]
        entries.sort(key=lambda e: struct.unpack_from(endian + "H", e)[0])
        data[start + 2 : end] = b"".join(entries)
        for entry in entries:
            tag = struct.unpack_from(endian + "H", entry)[0]
            if (owner == 0 and tag in (_EXIF_IFD, _GPS_IFD)) or (owner == _EXIF_IFD and tag == _INTEROP_IFD):
                pending.append((struct.unpack_from(endian + "I", entry, 8)[0], tag))
    return bytes(data)


def _shrink_for_jpeg(exif: bytes, notes: list[str]) -> bytes | None:
    """A JPEG APP1 segment holds 64 KiB; a maker note is the usual culprit, so it goes first."""
    try:
        d = piexif.load(exif)
        if d["Exif"].pop(piexif.ExifIFD.MakerNote, None) is not None:
            smaller = sort_ifd_entries(piexif.dump(d))
            if len(smaller) + 2 <= JPEG_SEGMENT_MAX:
                notes.append("EXIF MakerNote dropped: EXIF too long for a JPEG segment")
                return smaller
    except Exception:
        pass
    notes.append(f"EXIF dropped: {len(exif)} bytes is too long for a JPEG segment")
    return None


def _reset_xmp_orientation(xmp: bytes) -> bytes:
    """XMP may repeat the orientation; left alone it would turn the already turned pixels."""
    return _XMP_ORIENT_RE.sub(rb"\g<1>1", xmp)


def photoshop_irb(iptc: bytes) -> bytes:
    """IPTC-IIM as a Photoshop image-resource block (resource 0x0404), the form that JPEG APP13
    (after b"Photoshop 3.0\\0") and the TIFF ImageResources tag hold."""
    resource = b"8BIM" + struct.pack(">H", _PHOTOSHOP_IPTC) + b"\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    return resource + (b"\x00" if len(iptc) % 2 else b"")


def parse_irb(data: bytes) -> dict[int, bytes]:
    """Photoshop image resources (b"8BIM", id, padded Pascal name, size, padded data) by id."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos + 12 <= len(data) and data[pos : pos + 4] == b"8BIM":
        (rid,) = struct.unpack_from(">H", data, pos + 4)
        name_len = data[pos + 6]
        pos += 6 + (name_len + 2) // 2 * 2  # the name, its length byte, padded to even
        if pos + 4 > len(data):
            break
        (size,) = struct.unpack_from(">I", data, pos)
        out[rid] = bytes(data[pos + 4 : pos + 4 + size])
        pos += 4 + size + (size % 2)
    return out


def describe_icc(icc: bytes | None) -> str:
    """A profile's own name, for notes ("Dot Gain 20%"); '' when it cannot be read."""
    if not icc:
        return ""
    try:
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
    except Exception:
        return ""
