"""Which file formats are scans, how their bytes are recognised, and what each one is written as.

One table serves discovery (what the first bytes say, before anything is decoded), reading
(which Pillow plugins may open a file) and writing (the output format when it is "same as
input"). Torch-free and Pillow-free: `--dry-run` uses it.

Output rule: a format is written back as itself when it is written faithfully here, with room
for the metadata and the provenance XMP (JPEG, PNG, TIFF, WebP, JPEG 2000, the last always
lossless). Every other raster falls back to a lossless format that holds 16 bits a channel,
EXIF, ICC and XMP: PNG (BMP, GIF, PNM, PCX, TGA, HEIF, AVIF), or TIFF for PSD, whose Photoshop
resources and IPTC only TIFF can hold. PNG rather than TIFF for the others: a TIFF must state
a resolution (exiftool -validate warns when it does not), and these formats mostly state none,
so a TIFF would have to invent one.
"""

from __future__ import annotations

import os

# Extension spellings per format; the first one is what we write when we pick the name.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg", ".jpe"),
    "PNG": (".png",),
    "TIFF": (".tif", ".tiff", ".btf"),  # .btf: BigTIFF, written back as one
    "WEBP": (".webp",),
    "JPEG2000": (".jp2", ".j2k", ".jpf", ".jpx", ".j2c"),
    "BMP": (".bmp", ".dib"),
    "GIF": (".gif",),
    "PPM": (".pgm", ".ppm", ".pbm", ".pnm"),
    "PSD": (".psd",),
    "PCX": (".pcx",),
    "TGA": (".tga",),
    "HEIF": (".heic", ".heif"),
    "AVIF": (".avif",),
}
EXT_FORMAT = {ext: fmt for fmt, exts in EXTENSIONS.items() for ext in exts}

# Spellings not kept for an output: a bare JPEG 2000 codestream cannot hold the metadata and the
# provenance, so what is written is a JP2 file, named so.
NOT_KEPT_SPELLINGS = frozenset({".j2k", ".j2c", ".jpf", ".jpx"})
# Formats written back as themselves; the rest fall back to PNG, or to TIFF where named here.
WRITTEN_AS_ITSELF = ("JPEG", "PNG", "TIFF", "WEBP", "JPEG2000")
FALLBACK = "PNG"
FALLBACK_FOR = {"PSD": "TIFF"}
# Formats that hold 16 bits a channel in colour, as written here.
SIXTEEN_BIT = ("PNG", "TIFF", "JPEG2000")
# --format values (and their common spellings) -> the format written.
OUT_FORMATS = {
    "jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "tiff": "TIFF", "tif": "TIFF", "webp": "WEBP",
    "jp2": "JPEG2000", "jpeg2000": "JPEG2000",
}  # fmt: skip
# Pillow plugin names that may open each scan format (MPO is a JPEG with extra frames).
PILLOW_PLUGINS: dict[str, tuple[str, ...]] = {
    "JPEG": ("JPEG", "MPO"), "PNG": ("PNG",), "TIFF": ("TIFF",), "WEBP": ("WEBP",),
    "JPEG2000": ("JPEG2000",), "BMP": ("BMP", "DIB"), "GIF": ("GIF",), "PPM": ("PPM",),
    "PSD": ("PSD",), "PCX": ("PCX",), "TGA": ("TGA",), "HEIF": ("HEIF",), "AVIF": ("AVIF",),
}  # fmt: skip

# BITMAPINFOHEADER family sizes; checking them keeps any text that starts with "BM" out.
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
_AVIF_BRANDS = (b"avif", b"avis")
_PCX_VERSIONS = (0, 2, 3, 4, 5)


def output_format(fmt: str) -> str:
    """The format a scan of `fmt` is written as when the output format is "same as input"."""
    return fmt if fmt in WRITTEN_AS_ITSELF else FALLBACK_FOR.get(fmt, FALLBACK)


def raster_format(head: bytes) -> str | None:
    """The raster format the first bytes (16 are enough) name, or None; the name is ignored.
    TGA has no signature: it is known by its extension only."""
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic and BigTIFF
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or head[:4] == b"\xff\x4f\xff\x51":  # JP2 box, J2K codestream
        return "JPEG2000"
    if head[:2] == b"BM" and len(head) >= 16 and int.from_bytes(head[14:16], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3] in b" \t\r\n#":
        return "PPM"
    if head[:4] == b"8BPS":
        return "PSD"
    # ZSoft PCX: manufacturer 10, a version PCX defines, RLE encoding, 1 to 8 bits a plane
    if len(head) >= 4 and head[0] == 0x0A and head[1] in _PCX_VERSIONS and head[2] == 1 and head[3] in (1, 2, 4, 8):
        return "PCX"
    if head[4:8] == b"ftyp":
        if head[8:12] in _AVIF_BRANDS:
            return "AVIF"
        if head[8:12] in _HEIF_BRANDS:
            return "HEIF"
    return None


_DOCUMENT_EXTENSIONS = {
    ".pdf": "PDF documents are not colorized",
    ".eps": "PostScript/EPS documents are not colorized",
    ".ps": "PostScript/EPS documents are not colorized",
    ".ai": "Illustrator documents are not colorized",
    ".svg": "SVG vector drawings are not colorized",
    ".svgz": "SVG vector drawings are not colorized",
}


def not_a_raster(head: bytes, ext: str = "") -> str | None:
    """A true reason for files that are documents rather than photo rasters, or None."""
    if head[:5] == b"%PDF-":
        return "PDF documents are not colorized"
    if head[:4] == b"\xc5\xd0\xd3\xc6" or head[:4] == b"%!PS":
        return "PostScript/EPS documents are not colorized"
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text[:4] == b"<svg" or (text[:5] == b"<?xml" and b"<svg" in head):
        return "SVG vector drawings are not colorized"
    return _DOCUMENT_EXTENSIONS.get(ext.lower()) if raster_format(head) is None else None


SNIFF_BYTES = 16  # enough for every signature above


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
    return raster_format(read_head(path))
