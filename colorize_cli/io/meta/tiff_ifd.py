"""TIFF image file directories (IFDs) as raw entries: read from any TIFF structure (an EXIF
block, a TIFF or BigTIFF file) and laid out again, so every tag keeps its type, its count and
its bytes. Text is never decoded on the way through: UTF-8 stays UTF-8, Latin-1 stays Latin-1.

Why not piexif.dump: it writes the Exif and GPS IFDs without their next-IFD offset (exiftool
-validate: "Value for ExifIFD tag ... overlaps IFD"), retypes tags from its own tables and
drops tags those tables do not know. Layout here follows TIFF 6.0: entries sorted by tag,
every IFD ends with its 4-byte next-IFD offset, every out-of-line value starts on a word boundary.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
MAKER_NOTE = 0x927C
BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEFINED, LONG8 = 1, 2, 3, 4, 5, 7, 16
# Bytes per value of each TIFF field type (BigTIFF's 16-18 cannot go into a classic TIFF).
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_CLASSIC_TYPES = frozenset(range(1, 14))
_FORMATS = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 11: "f", 12: "d", 13: "I", 16: "Q", 17: "q", 18: "Q"}
_MAX_ENTRIES = 4096  # a corrupt count must not make us read megabytes

Reader = Callable[[int, int], bytes]  # (offset, length) -> bytes, shorter at the end of the data


@dataclass(frozen=True)
class Entry:
    """One tag's value as stored: field type, value count, and the value bytes in the byte
    order of the structure it came from."""

    type: int
    count: int
    data: bytes
    # Where the value stood in the structure it was read from (offset from its TIFF header) when
    # it was stored out of line: a MakerNote is laid out there again (`MAKER_NOTE`).
    origin: int | None = field(default=None, compare=False, repr=False)

    def values(self, order: str) -> tuple:
        """The numbers of a numeric entry (rationals as (numerator, denominator) pairs)."""
        if self.type in (RATIONAL, 10):
            flat = struct.unpack(f"{order}{2 * self.count}{'I' if self.type == RATIONAL else 'i'}", self.data)
            return tuple(zip(flat[::2], flat[1::2]))
        code = _FORMATS.get(self.type)
        if code is None:
            return tuple(self.data)
        return struct.unpack(f"{order}{self.count}{code}", self.data)

    def text(self) -> bytes:
        """An ASCII entry's bytes without the trailing NULs."""
        return self.data.rstrip(b"\x00")


@dataclass
class Directory:
    """One image's tags (IFD0 of an EXIF block, or a page of a TIFF) and its EXIF sub-IFDs."""

    order: str  # "<" (II) or ">" (MM)
    tags: dict[int, Entry] = field(default_factory=dict)
    exif: dict[int, Entry] = field(default_factory=dict)
    gps: dict[int, Entry] = field(default_factory=dict)
    interop: dict[int, Entry] = field(default_factory=dict)


def pack(order: str, kind: int, values: object) -> Entry:
    """An entry from Python values: bytes for ASCII/BYTE/UNDEFINED (ASCII gets its NUL),
    an int or ints for SHORT/LONG, a list of (numerator, denominator) pairs for RATIONAL."""
    if kind == ASCII:
        data = bytes(values) + b"\x00"  # type: ignore[call-overload]
        return Entry(kind, len(data), data)
    if kind in (BYTE, UNDEFINED):
        data = bytes(values)  # type: ignore[call-overload]
        return Entry(kind, len(data), data)
    items = list(values) if isinstance(values, (list, tuple)) else [values]
    if kind == RATIONAL:
        flat = [int(v) for pair in items for v in pair]  # type: ignore[union-attr]
        return Entry(kind, len(items), struct.pack(f"{order}{len(flat)}I", *flat))
    return Entry(kind, len(items), struct.pack(f"{order}{len(items)}{_FORMATS[kind]}", *[int(v) for v in items]))


# ------------------------------------------------------------------------------------- reading


def header(read: Reader) -> tuple[str, bool, int]:
    """(byte order, is BigTIFF, offset of the first IFD) of a TIFF structure."""
    head = read(0, 16)
    if head[:2] not in (b"II", b"MM"):
        raise ValueError("no TIFF header")
    order = "<" if head[:2] == b"II" else ">"
    (magic,) = struct.unpack_from(order + "H", head, 2)
    if magic == 42:
        return order, False, struct.unpack_from(order + "I", head, 4)[0]
    if magic == 43 and len(head) >= 16:
        return order, True, struct.unpack_from(order + "Q", head, 8)[0]
    raise ValueError("no TIFF header")


def read_ifd(read: Reader, offset: int, order: str, big: bool = False) -> tuple[dict[int, Entry], int]:
    """The entries of the IFD at `offset` and the offset of the next one (0: none).
    Entries whose value lies outside the data are left out."""
    count_fmt, count_size, entry_size, inline = ("Q", 8, 20, 8) if big else ("H", 2, 12, 4)
    raw = read(offset, count_size)
    if len(raw) < count_size:
        raise ValueError(f"IFD offset {offset} is past the end")
    (n,) = struct.unpack(order + count_fmt, raw)
    if n > _MAX_ENTRIES:
        raise ValueError(f"IFD at {offset} claims {n} entries")
    table = read(offset + count_size, n * entry_size + inline)
    if len(table) < n * entry_size:
        raise ValueError(f"IFD at {offset} is cut short")
    entries: dict[int, Entry] = {}
    for i in range(n):
        at = i * entry_size
        if big:
            tag, kind, count = struct.unpack_from(order + "HHQ", table, at)
        else:
            tag, kind, count = struct.unpack_from(order + "HHI", table, at)
        size = TYPE_SIZES.get(kind)
        if size is None:
            continue
        length = size * count
        where = None
        if length <= inline:
            data = table[at + entry_size - inline : at + entry_size - inline + length]
        else:
            (where,) = struct.unpack_from(order + ("Q" if big else "I"), table, at + entry_size - inline)
            data = read(where, length)
        if len(data) == length:
            entries[tag] = Entry(kind, count, bytes(data), where)
    tail = table[n * entry_size : n * entry_size + inline]
    following = struct.unpack(order + ("Q" if big else "I"), tail)[0] if len(tail) == inline else 0
    return entries, following


def read_directory(read: Reader, offset: int, order: str, big: bool = False) -> Directory:
    """An IFD and the Exif, GPS and Interop IFDs it points to (a broken sub-IFD is left out)."""
    tags, _ = read_ifd(read, offset, order, big)
    d = Directory(order, tags)
    for pointer, name, owner in ((EXIF_IFD, "exif", "tags"), (GPS_IFD, "gps", "tags"), (INTEROP_IFD, "interop", "exif")):
        entry = getattr(d, owner).pop(pointer, None)
        if entry is None or entry.count < 1:
            continue
        try:
            setattr(d, name, read_ifd(read, int(entry.values(order)[0]), order, big)[0])
        except (ValueError, struct.error):
            pass
    return d


def page_offsets(read: Reader, limit: int = 10_000) -> tuple[str, bool, list[int]]:
    """Byte order, BigTIFF flag and the offsets of every IFD in a TIFF file's main chain."""
    order, big, offset = header(read)
    offsets: list[int] = []
    while offset and offset not in offsets and len(offsets) < limit:
        offsets.append(offset)
        offset = read_ifd(read, offset, order, big)[1]
    return order, big, offsets


def parse_exif(block: bytes) -> Directory:
    """An EXIF block (TIFF-structured, with or without the b"Exif\\0\\0" of JPEG APP1)."""
    body = block[6:] if block.startswith(b"Exif\x00\x00") else block

    def read(offset: int, length: int) -> bytes:
        return body[offset : offset + length]

    order, big, first = header(read)
    return read_directory(read, first, order, big)


# ------------------------------------------------------------------------------------- writing


class Space:
    """The byte ranges of a TIFF structure being laid out: pieces pinned where they must stand
    (a MakerNote at its original offset), everything else put first-fit into the gaps, each on
    a word boundary. Offsets count from the TIFF header."""

    def __init__(self, start: int = 8) -> None:
        self.used: list[tuple[int, int]] = [(0, start)]  # sorted, non-overlapping [begin, end)

    def reserve(self, at: int, size: int) -> bool:
        """Claim [at, at + size); False (nothing claimed) when any of it is taken."""
        if at < 0 or size <= 0 or any(a < at + size and at < b for a, b in self.used):
            return False
        bisect.insort(self.used, (at, at + size))
        return True

    def take(self, size: int) -> int:
        """The lowest free even offset with room for `size` bytes, claimed."""
        at = 0
        for a, b in self.used:
            if at + size <= a:
                break
            at = max(at, b + (b % 2))
        bisect.insort(self.used, (at, at + max(size, 1)))
        return at


def ifd_bytes(entries: dict[int, Entry], start: int, order: str, next_ifd: int = 0,
              pinned: dict[int, int] | None = None, big: bool = False) -> bytes:
    """One IFD placed at `start` (classic TIFF, or BigTIFF when `big`): entries sorted by tag,
    the next-IFD offset, then the values that do not fit in the entry (4 bytes, 8 in BigTIFF),
    each on a word boundary. A `pinned` tag's value is not among them: it stands at the offset
    given (laid out by the caller)."""
    pinned = pinned or {}
    count_fmt, entry_fmt, offset_fmt, inline = ("Q", "HHQ", "Q", 8) if big else ("H", "HHI", "I", 4)
    tags = sorted(t for t, e in entries.items() if big or e.type in _CLASSIC_TYPES)
    table = bytearray(struct.pack(order + count_fmt, len(tags)))
    values = bytearray()
    values_at = start + _ifd_size(len(tags), big)
    for tag in tags:
        e = entries[tag]
        table += struct.pack(order + entry_fmt, tag, e.type, e.count)
        if len(e.data) <= inline:
            table += e.data.ljust(inline, b"\x00")
        elif tag in pinned:
            table += struct.pack(order + offset_fmt, pinned[tag])
        else:
            table += struct.pack(order + offset_fmt, values_at + len(values))
            values += e.data + (b"\x00" if len(e.data) % 2 else b"")
    table += struct.pack(order + offset_fmt, next_ifd)
    return bytes(table + values)


def _ifd_size(entries: int, big: bool) -> int:
    """Bytes of an IFD's count, entries and next-IFD offset."""
    return 8 + 20 * entries + 8 if big else 2 + 12 * entries + 4


def maker_note_origin(d: Directory) -> tuple[int, int] | None:
    """(offset, length) where `d`'s MakerNote stood in the structure it was read from, or None.
    Many makers' notes (Canon, Sony, Panasonic, Pentax, old Olympus...) point at their own
    values by offsets from the TIFF header, so the block is only right where it was."""
    e = d.exif.get(MAKER_NOTE)
    if e is None or e.origin is None or len(e.data) <= 4 or e.type not in _CLASSIC_TYPES:
        return None
    return e.origin, len(e.data)


def place_directory(d: Directory, space: Space, extra: dict[int, Entry] | None = None, pin: bool = True,
                    maker_note_at: int | None = None, big: bool = False) -> tuple[list[tuple[int, bytes]], int, int]:
    """Lay out `d` in `space`: its IFD (with `extra` entries added, e.g. strip offsets), its
    Exif, Interop and GPS IFDs, and, when `pin`, its MakerNote at the offset it had (when that
    is free; `maker_note_at`: the caller already wrote it there). Returns the pieces as
    (offset, bytes), the main IFD's offset and the offset of its next-IFD field (for chaining
    pages)."""
    order = d.order
    main = {**d.tags, **(extra or {})}
    exif = dict(d.exif)
    pieces: list[tuple[int, bytes]] = []
    pinned: dict[int, int] = {}
    origin = maker_note_origin(d) if pin else None
    if maker_note_at is not None and MAKER_NOTE in exif:
        pinned[MAKER_NOTE] = maker_note_at
    elif origin and space.reserve(*origin):
        pinned[MAKER_NOTE] = origin[0]
        pieces.append((origin[0], exif[MAKER_NOTE].data))
    pointer = LONG8 if big else LONG
    placeholder = pack(order, pointer, 0)
    if d.exif or d.interop:
        main[EXIF_IFD] = placeholder
    if d.gps:
        main[GPS_IFD] = placeholder
    if d.interop:
        exif[INTEROP_IFD] = placeholder

    def size(entries: dict[int, Entry], pins: dict[int, int] | None = None) -> int:
        return len(ifd_bytes(entries, 0, order, pinned=pins, big=big))

    main_at = space.take(size(main))
    exif_at = space.take(size(exif, pinned)) if (d.exif or d.interop) else 0
    interop_at = space.take(size(d.interop)) if d.interop else 0
    gps_at = space.take(size(d.gps)) if d.gps else 0
    if exif_at:
        main[EXIF_IFD] = pack(order, pointer, exif_at)
    if gps_at:
        main[GPS_IFD] = pack(order, pointer, gps_at)
    if interop_at:
        exif[INTEROP_IFD] = pack(order, pointer, interop_at)
    pieces.append((main_at, ifd_bytes(main, main_at, order, big=big)))
    for offset, entries, pins in ((exif_at, exif, pinned), (interop_at, d.interop, None), (gps_at, d.gps, None)):
        if offset:
            pieces.append((offset, ifd_bytes(entries, offset, order, pinned=pins, big=big)))
    written = sum(1 for e in main.values() if big or e.type in _CLASSIC_TYPES)
    next_at = main_at + _ifd_size(written, big) - (8 if big else 4)
    return pieces, main_at, next_at


def assemble(pieces: list[tuple[int, bytes]], start: int = 0) -> bytes:
    """The pieces as one run of bytes from `start`, gaps zero-filled."""
    end = max((at + len(data) for at, data in pieces), default=start)
    out = bytearray(end - start)
    for at, data in pieces:
        out[at - start : at - start + len(data)] = data
    return bytes(out)


def exif_block(d: Directory, pin: bool = True) -> bytes:
    """A TIFF-structured EXIF block (no b"Exif\\0\\0"): header, then `d` from offset 8, its
    MakerNote (when `pin`) at the offset it had in the block it came from."""
    head = (b"II*\x00" if d.order == "<" else b"MM\x00*") + struct.pack(d.order + "I", 8)
    pieces, main_at, _ = place_directory(d, Space(8), pin=pin)
    head = head[:4] + struct.pack(d.order + "I", main_at)
    return assemble([(0, head), *pieces])
