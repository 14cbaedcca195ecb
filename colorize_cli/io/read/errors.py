"""Why a file whose signature a format recognises still cannot be opened: the true reason.

Pillow's opener tries every format and, when all refuse, says "cannot identify image file",
even for a TIFF cut before its directory or a PNG whose text chunk is too large. When a format
accepted the file's first bytes, its own error says what is wrong; this turns that error into a
reason a person understands and the failure kind resume decisions use.
"""

from __future__ import annotations

import struct

from colorize_cli.failures import Kind
from colorize_cli.io.meta.source import one_line

_TIFF_PHOTOMETRIC = {0: "gray", 1: "gray", 2: "RGB", 3: "palette", 4: "mask", 5: "CMYK", 6: "YCbCr", 8: "CIELab"}


def why_unopenable(fmt: str, err: Exception, prefix: bytes, size: int) -> tuple[str, Kind]:
    """(reason, kind) for a file of `size` bytes starting with `prefix` that `fmt` recognised
    but could not open (or decode) with `err`."""
    text = one_line(err)
    low = text.lower()
    if isinstance(err, (EOFError, struct.error)) or "truncat" in low or _tiff_ifd_past_end(fmt, prefix, size):
        return f"truncated {fmt}: the file ends before its {'directory' if fmt == 'TIFF' else 'data'}", Kind.INPUT_TRUNCATED
    if "too large" in low or "too much memory" in low:
        return f"too large: a {fmt} metadata chunk decompresses past the safety limit ({text})", Kind.TOO_LARGE
    key = err.__cause__.args[0] if isinstance(err.__cause__, KeyError) and err.__cause__.args else None
    if fmt == "TIFF" and "unknown pixel mode" in low and isinstance(key, tuple) and len(key) >= 6:
        return f"unsupported TIFF: {_tiff_layout(key)} has no Pillow pixel mode", Kind.UNSUPPORTED
    if any(word in low for word in ("unknown", "unsupported", "not supported", "not available")):
        return f"unsupported {fmt}: {text}", Kind.UNSUPPORTED
    return f"corrupt {fmt}: {text}", Kind.INPUT_CORRUPT


def _tiff_layout(key: tuple) -> str:
    """Pillow's TIFF mode key (byte order, photometric, sample format, fill order, bits per
    sample, extra samples) in words, e.g. "16-bit gray with alpha"."""
    bits = sorted(set(key[4])) if isinstance(key[4], tuple) else [key[4]]
    depth = "/".join(str(b) for b in bits)
    kind = _TIFF_PHOTOMETRIC.get(key[1], f"photometric {key[1]}")
    extra = key[5] if isinstance(key[5], tuple) else ()
    alpha = " with alpha" if any(e in (1, 2) for e in extra) else (" with extra samples" if extra else "")
    return f"{depth}-bit {kind}{alpha}"


def _tiff_ifd_past_end(fmt: str, prefix: bytes, size: int) -> bool:
    """A classic or Big TIFF whose first directory lies beyond the end of the file: cut short."""
    if fmt != "TIFF" or len(prefix) < 16 or prefix[:2] not in (b"II", b"MM"):
        return False
    order = "<" if prefix[:2] == b"II" else ">"
    magic = struct.unpack(order + "H", prefix[2:4])[0]
    if magic not in (42, 43):
        return False
    offset = struct.unpack(order + ("I" if magic == 42 else "Q"), prefix[4:8] if magic == 42 else prefix[8:16])[0]
    return offset + 2 > size
