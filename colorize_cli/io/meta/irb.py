"""Photoshop image resource blocks (IRB): the container IPTC-IIM lives in inside JPEG APP13
(after b"Photoshop 3.0\\0") and TIFF tag 34377, beside other resources (CopyrightFlag, URL,
resolution info...). Every resource is kept as stored except the thumbnails, which would show
the gray original."""

from __future__ import annotations

import hashlib
import struct

IPTC = 0x0404
IPTC_DIGEST = 0x0425
THUMBNAILS = frozenset({0x0409, 0x040C})


def parse(data: bytes) -> dict[int, tuple[bytes, bytes]]:
    """Resources by id: (Pascal name as stored, data). Stops at the first malformed one."""
    out: dict[int, tuple[bytes, bytes]] = {}
    pos = 0
    while pos + 12 <= len(data) and data[pos : pos + 4] == b"8BIM":
        (rid,) = struct.unpack_from(">H", data, pos + 4)
        name_len = data[pos + 6]
        name = bytes(data[pos + 7 : pos + 7 + name_len])
        pos += 6 + (name_len + 2) // 2 * 2  # the name, its length byte, padded to even
        if pos + 4 > len(data):
            break
        (size,) = struct.unpack_from(">I", data, pos)
        out[rid] = (name, bytes(data[pos + 4 : pos + 4 + size]))
        pos += 4 + size + (size % 2)
    return out


def build(resources: dict[int, tuple[bytes, bytes]]) -> bytes:
    """The block for these resources, in the order given (a parsed block's own), each padded to
    even length."""
    out = bytearray()
    for rid in resources:
        name, data = resources[rid]
        pascal = bytes([len(name)]) + name
        out += b"8BIM" + struct.pack(">H", rid) + pascal + (b"\x00" if len(pascal) % 2 else b"")
        out += struct.pack(">I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")
    return bytes(out)


def carried(photoshop: bytes | None, iptc: bytes | None, moved: frozenset[int] = frozenset()) -> bytes | None:
    """The block an output gets: the input's resources without thumbnails (and without
    `moved`, those the output holds in places of their own), with `iptc` as resource 0x0404
    when there is IPTC; None when nothing is left."""
    resources = {rid: v for rid, v in parse(photoshop or b"").items() if rid not in THUMBNAILS and rid not in moved}
    if iptc:
        name = resources.get(IPTC, (b"", b""))[0]
        resources[IPTC] = (name, iptc)
    return build(resources) if resources else None


def with_digest(photoshop: bytes | None, old: bytes, new: bytes) -> bytes | None:
    """The block with its IPTCDigest (the MD5 of the IPTC as stored) following the IPTC from
    `old` to `new` bytes (the same records, padded as a TIFF tag stores them) when it was current;
    a stale digest stays stale, as the input had it."""
    resources = parse(photoshop or b"")
    name, digest = resources.get(IPTC_DIGEST, (b"", b""))
    if digest != hashlib.md5(old).digest():
        return photoshop
    resources[IPTC_DIGEST] = (name, hashlib.md5(new).digest())
    return build(resources)
