"""What a PNG output carries of its input's ancillary chunks: each copied byte for byte in file
order, before or after the pixel data as it stood, but for what must change (bKGD in RGB, orNT
upright, the ICC profile, the XMP) and the chunks that describe the old pixels (dropped with a note).
Chunks the input had not (its ICC profile, EXIF, XMP, resolution, other formats' text) come first."""

from __future__ import annotations

import struct
import zlib
from typing import Protocol

from colorize_cli.io.meta.source import EXIF_HEADER, Chunk, Metadata


class CarriedForPng(Protocol):
    """What of `carry.Carried` the PNG chunks are made from (named here, so this module needs
    nothing of carry.py, which imports it)."""

    icc_profile: bytes | None
    xmp: bytes | None
    dpi: tuple[float, float] | None
    text: dict[str, str]

    @property
    def exif(self) -> bytes | None: ...


_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
# PNG chunks whose content another format holds too (as EXIF, ICC, XMP, text, resolution)
PNG_HELD_ELSEWHERE = frozenset({b"iCCP", b"sRGB", b"eXIf", b"pHYs", *_TEXT_CHUNKS})
# PNG ancillary chunks that stay true of the colorized copy (PNG spec: safe to copy, or known to
# hold): colour encoding and gamma (which the kept tones keep), time, physical size and offset,
# orientation, text.
_PNG_KEPT = frozenset({b"gAMA", b"cHRM", b"tIME", b"pHYs", b"oFFs", b"sCAL", b"orNT", *_TEXT_CHUNKS})
# PNG chunks that would lie about the colorized copy, and why each is dropped
_PNG_DROPPED = {
    b"sBIT": "significant bits of the gray original; every bit of the colorized samples counts",
    b"tRNS": "its transparent colour key would not mark the same pixels once colorized",
    b"hIST": "histogram of the gray original's palette",
    b"sPLT": "suggested palette of the gray original's colours",
    b"pCAL": "calibration of the gray original's sample values",
    b"cICP": "colour coding of the original; the copy's is its ICC profile",
    b"mDCV": "mastering display of the original's colours",
    b"cLLI": "light levels of the original's pixels",
    b"dSIG": "a signature of the original file",
    b"acTL": "animation: only the first frame is colorized",
    b"fcTL": "animation: only the first frame is colorized",
}
_XMP_KEY = b"XML:com.adobe.xmp"
_STALE_TEXT = (b"raw profile type exif", b"raw profile type app1")


def _png_text_key(chunk: Chunk) -> bytes:
    return chunk.data.split(b"\x00", 1)[0] if chunk.kind in _TEXT_CHUNKS else b""


def _png_xmp(chunk: Chunk | None, xmp: bytes) -> Chunk:
    """The XMP as an iTXt chunk in `chunk`'s place, compressed as it was (with its language tag)."""
    if chunk is None:
        return Chunk(b"iTXt", _XMP_KEY + b"\x00\x00\x00\x00\x00" + xmp)
    if chunk.kind == b"iTXt":  # keyword NUL, compression flag and method, language NUL, translated keyword NUL
        data = chunk.data
        key_end = data.find(b"\x00")
        lang_end = data.find(b"\x00", key_end + 3) if key_end >= 0 else -1
        tkey_end = data.find(b"\x00", lang_end + 1) if lang_end >= 0 else -1
        if tkey_end >= 0:
            compressed = data[key_end + 1] == 1
            return Chunk(b"iTXt", data[: tkey_end + 1] + (zlib.compress(xmp, 9) if compressed else xmp), chunk.after)
    compressed = chunk.kind == b"zTXt"
    return Chunk(b"iTXt", _XMP_KEY + b"\x00" + (b"\x01" if compressed else b"\x00") + b"\x00\x00\x00"
                 + (zlib.compress(xmp, 9) if compressed else xmp), chunk.after)


def _png_background(data: bytes, header: tuple[int, int], palette: bytes) -> bytes | None:
    """A bKGD of the input's colour type as 16-bit RGB (the colour it named, gray as gray)."""
    depth, colour_type = header
    top = (1 << depth) - 1 if depth in (1, 2, 4, 8, 16) else 0
    if colour_type == 3 and data and 3 * data[0] + 3 <= len(palette):
        return struct.pack(">3H", *(v * 257 for v in palette[3 * data[0] : 3 * data[0] + 3]))
    if colour_type in (0, 4) and len(data) >= 2 and top:
        (gray,) = struct.unpack_from(">H", data)
        return struct.pack(">3H", *[min(gray, top) * 65535 // top] * 3)
    if colour_type in (2, 6) and len(data) >= 6 and top:
        return struct.pack(">3H", *(min(v, top) * 65535 // top for v in struct.unpack_from(">3H", data)))
    return None


def png_chunks(meta: Metadata, c: CarriedForPng, notes: list[str], srgb: bool) -> list[Chunk]:
    """A PNG output's ancillary chunks: a PNG input's own, byte for byte and in their places
    (before or after the pixel data), but for what must change: the ICC profile, EXIF and XMP
    become the carried ones (in their chunk's place, an iTXt XMP compressed as it was), bKGD
    names the same colour in RGB, orNT and pHYs follow the turned pixels, and the chunks that
    would lie about the colorized copy are dropped with a note (`_PNG_DROPPED`, and unknown
    chunks the PNG spec calls unsafe to copy once the image changed). What the copy needs and
    the input had not (its ICC profile, EXIF, XMP, resolution, other formats' text) comes first."""
    source = meta.png_chunks or []
    kinds = {ch.kind for ch in source}
    keep_srgb = srgb and b"sRGB" in kinds and b"iCCP" not in kinds  # sRGB chunk: the profile, as the input said it
    turned = meta.orientation != 1
    swapped = meta.orientation in (5, 6, 7, 8)
    exif = c.exif
    out: list[Chunk] = []
    placed: set[str] = set()
    dropped: dict[str, list[str]] = {}
    for ch in source:
        kind, key = ch.kind, _png_text_key(ch)
        if kind == b"iCCP" or (kind == b"sRGB" and keep_srgb):
            if "icc" in placed or not c.icc_profile:
                continue
            placed.add("icc")
            profile = _png_profile(ch.data) if kind == b"iCCP" else None
            if kind == b"sRGB" or profile == c.icc_profile:
                out.append(Chunk(kind, ch.data))  # the input's own: its name and compression too
            else:
                if kind == b"iCCP" and profile is None:
                    notes.append("ICC profile replaced: the input's iCCP chunk cannot be decompressed; "
                                 "the copy is tagged sRGB")
                out.append(Chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(c.icc_profile)))
        elif kind == b"sRGB":
            dropped.setdefault("the copy is tagged by its ICC profile", []).append("sRGB")
        elif kind == b"eXIf":
            if "exif" not in placed and exif:
                out.append(Chunk(b"eXIf", exif[len(EXIF_HEADER) :], ch.after))
                placed.add("exif")
        elif key == _XMP_KEY:
            if "xmp" not in placed and c.xmp:
                out.append(_png_xmp(ch, c.xmp))
                placed.add("xmp")
        elif key.lower() in _STALE_TEXT:
            dropped.setdefault("a stale copy of the EXIF, with the gray original's orientation and thumbnail",
                               []).append(f"{kind.decode()} {key.decode('latin-1')}")
        elif kind == b"bKGD":
            rgb = _png_background(ch.data, meta.png_header, meta.png_palette)
            if rgb is None:
                dropped.setdefault("it does not match the input's colour type", []).append("bKGD")
            else:
                out.append(Chunk(kind, rgb, ch.after))
        elif kind == b"orNT" and turned:
            out.append(Chunk(kind, b"\x01", ch.after))  # the pixels were turned upright
        elif kind == b"pHYs" and swapped and len(ch.data) == 9:
            out.append(Chunk(kind, ch.data[4:8] + ch.data[:4] + ch.data[8:], ch.after))
        elif kind in _PNG_DROPPED:
            if kind != b"tRNS" or meta.png_header[1] != 3:  # a palette's tRNS is the copy's alpha channel
                dropped.setdefault(_PNG_DROPPED[kind], []).append(kind.decode("latin-1"))
        elif kind in _PNG_KEPT or kind[3] & 0x20:  # known to hold, or safe to copy (PNG spec, 5.4)
            out.append(ch)
        else:
            dropped.setdefault("unknown chunk the PNG spec says not to copy into a changed image",
                               []).append(kind.decode("latin-1"))
    first: list[Chunk] = []
    if "icc" not in placed and c.icc_profile:
        first.append(Chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(c.icc_profile)))
    if c.dpi and b"pHYs" not in kinds:
        ppm = [max(1, round(v / 0.0254)) for v in c.dpi]
        first.append(Chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if "exif" not in placed and exif:
        first.append(Chunk(b"eXIf", exif[len(EXIF_HEADER) :]))
    if "xmp" not in placed and c.xmp:
        first.append(_png_xmp(None, c.xmp))
    if meta.png_chunks is None:  # other formats' text (comments); a PNG's own text chunks are above
        first += [ch for ch in (_png_text_chunk(k, v) for k, v in c.text.items()) if ch is not None]
    for why, names in dropped.items():
        counts = {n: names.count(n) for n in names}
        listed = ", ".join(n if k == 1 else f"{n} x{k}" for n, k in counts.items())
        notes.append(f"PNG chunks dropped: {listed} ({why})")
    return first + out


def _png_profile(data: bytes) -> bytes | None:
    """The profile an iCCP chunk holds (name, NUL, method 0, zlib stream)."""
    name_end = data.find(b"\x00")
    if name_end < 0 or data[name_end + 1 : name_end + 2] != b"\x00":
        return None
    try:
        return zlib.decompressobj().decompress(data[name_end + 2 :], 64 << 20)
    except zlib.error:
        return None


def _latin1_keyword(key: str) -> bytes | None:
    try:
        raw = key.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return raw if 1 <= len(raw) <= 79 and b"\x00" not in raw else None


def _png_text_chunk(key: str, value: str) -> Chunk | None:
    """tEXt (Latin-1) when the text fits and it was no iTXt; otherwise iTXt (UTF-8), with the
    language tag and translated keyword an input iTXt had."""
    keyword = _latin1_keyword(key)
    if keyword is None:
        return None
    lang, tkey = getattr(value, "lang", None), getattr(value, "tkey", None)
    if lang is None and tkey is None:
        try:
            return Chunk(b"tEXt", keyword + b"\x00" + value.encode("latin-1"))
        except UnicodeEncodeError:
            pass
    head = keyword + b"\x00\x00\x00" + (lang or "").encode("ascii", "replace") + b"\x00" + (tkey or "").encode("utf-8") + b"\x00"
    return Chunk(b"iTXt", head + str(value).encode("utf-8"))
