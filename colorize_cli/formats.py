"""Image formats by content: the one table of formats, their file extensions and magic bytes.

Discovery asks :func:`format_of` which format a file's first bytes name (the extension is only
a fallback for broken files), and output naming asks :data:`EXTENSIONS` how to spell a format.
"""

from __future__ import annotations

import os

SNIFF_BYTES = 16

# Extension spellings per format; the first one is what we write when we pick the name.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "TIFF": (".tif", ".tiff"),
    "BMP": (".bmp",),
    "WEBP": (".webp",),
}
EXT_FORMAT = {ext: fmt for fmt, exts in EXTENSIONS.items() for ext in exts}
# --format values (and their common spellings) -> the format written. BMP is read, never chosen.
OUT_FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "tiff": "TIFF", "tif": "TIFF", "webp": "WEBP"}
# BITMAPINFOHEADER family sizes; checking them keeps any text that starts with "BM" out.
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}


def format_of(head: bytes) -> str | None:
    """The format a file's first SNIFF_BYTES bytes name, or None."""
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic and BigTIFF
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM" and len(head) >= 16 and int.from_bytes(head[14:16], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    return None


def read_head(path: str | os.PathLike[str]) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        return os.read(fd, SNIFF_BYTES)
    finally:
        os.close(fd)


def sniff_format(path: str | os.PathLike[str]) -> str | None:
    """The image format named by the file's first 16 bytes, or None; the extension is ignored.

    Raises OSError when the file cannot be opened: an unreadable file is not a non-image.
    """
    return format_of(read_head(path))
