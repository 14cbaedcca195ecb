"""Every raster format an archive holds is recognised by its bytes and read; documents are named;
each format is written back as itself or as its documented lossless fallback. Inputs Pillow cannot
write (PSD, JPEG-compressed and tiled TIFF) are made by ImageMagick, an independent writer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image

from colorize_cli.discover import formats
from colorize_cli.discover.find import DiscoverOptions, discover
from colorize_cli.io.scanfile import read_scan, write_image
from colorize_cli.io.meta.source import Metadata


def ramp(h: int = 24, w: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 7 + y * 3) % 256).astype(np.uint8)


def magick(*args: str | Path) -> None:
    assert shutil.which("convert"), "ImageMagick missing: apt-get install imagemagick"
    subprocess.run(["convert", *map(str, args)], check=True, capture_output=True, timeout=60)


def make(tmp_path: Path, name: str) -> Path:
    """One small gray scan in the format its name says, written by Pillow or ImageMagick."""
    path = tmp_path / name
    g = Image.fromarray(ramp())
    if name.endswith(".psd") or name.startswith(("jpeg-in-tiff", "tiled")):
        g.save(tmp_path / "src.png")
        extra = {"jpeg-in-tiff.tif": ["-compress", "JPEG"], "tiled.tif": ["-define", "tiff:tile-geometry=16x16"]}
        magick(tmp_path / "src.png", *extra.get(name, []), path)
    elif name.endswith(".heic"):
        from pillow_heif import register_heif_opener

        register_heif_opener()
        g.convert("RGB").save(path, quality=-1)
    elif name == "big.tif":
        g.save(path, big_tiff=True)
    elif name.endswith(".webp"):
        g.save(path, lossless=True)
    else:
        g.save(path)
    return path


READ = {  # name -> (format from the bytes, format written for "same as input")
    "a.jp2": ("JPEG2000", "JPEG2000"), "a.pgm": ("PPM", "PNG"), "a.gif": ("GIF", "PNG"), "a.psd": ("PSD", "TIFF"),
    "a.tga": ("TGA", "PNG"), "a.bmp": ("BMP", "PNG"), "a.webp": ("WEBP", "WEBP"), "a.avif": ("AVIF", "PNG"),
    "a.heic": ("HEIF", "PNG"), "big.tif": ("TIFF", "TIFF"), "tiled.tif": ("TIFF", "TIFF"),
    "jpeg-in-tiff.tif": ("TIFF", "TIFF"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(READ))
def test_archive_formats_are_found_by_content_and_read(tmp_path, name):
    path = make(tmp_path, name)
    fmt, written = READ[name]
    disguised = tmp_path / "scans" / ("renamed.dat" if fmt != "TGA" else name)  # TGA has no signature: by name
    disguised.parent.mkdir()
    disguised.write_bytes(path.read_bytes())
    jobs, skipped = discover(tmp_path / "scans", tmp_path / "out", DiscoverOptions())
    assert [(j.fmt, j.out_fmt) for j in jobs] == [(fmt, written)] and skipped == []
    scan = read_scan(disguised)
    assert scan.size == (32, 24)
    error = np.abs(scan.gray.astype(int) - ramp())
    if name.endswith((".heic", ".avif")) or name.startswith("jpeg-in-tiff"):  # lossy codecs
        assert error.mean() < 4, name
    else:
        assert error.max() == 0, name


@pytest.mark.parametrize(
    "content,name,reason",
    [
        (b"%PDF-1.7\n", "scan.pdf", "PDF documents are not colorized"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "logo.eps", "PostScript/EPS documents are not colorized"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "map.svg", "SVG vector drawings are not colorized"),
        (b"%PDF-1.4\n", "misnamed.jpg", "PDF documents are not colorized"),
    ],
)
def test_documents_are_skipped_with_a_reason_naming_the_format(tmp_path, content, name, reason):
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / name).write_bytes(content)
    (tmp_path / "scans" / "notes.txt").write_text("box 3")
    jobs, skipped = discover(tmp_path / "scans", tmp_path / "out", DiscoverOptions())
    assert jobs == [] and {s.rel.name: s.reason for s in skipped} == {name: reason, "notes.txt": "not an image"}


def test_signatures_table():
    assert formats.raster_format(b"\x00\x00\x00\x0cjP  \r\n\x87\n\x00\x00") == "JPEG2000"
    assert formats.raster_format(b"\xff\x4f\xff\x51\x00\x2f") == "JPEG2000"
    assert formats.raster_format(b"P5\n32 24\n255\n") == "PPM" and formats.raster_format(b"P1 ") == "PPM"
    assert formats.raster_format(b"Pictures of 1931") is None  # text that starts with P
    assert formats.raster_format(b"GIF89a\x01\x00") == "GIF" and formats.raster_format(b"8BPS\x00\x01") == "PSD"
    assert formats.output_format("PSD") == "TIFF" and formats.output_format("GIF") == "PNG"
    assert formats.output_format("JPEG2000") == "JPEG2000"


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("TIFF", "tif"), ("JPEG2000", "jp2")])
def test_16bit_colour_in_16bit_colour_out(tmp_path, fmt, ext):
    """48-bit scans (a toned print scanned in colour) are read and written at 16 bits; tifffile,
    imagecodecs and exiftool read the results."""
    y, x = np.mgrid[0:20, 0:30]
    rgb = np.dstack([x * 2000 + 7, y * 3000 + 11, (x + y) * 1100 + 3]).astype(np.uint16)
    write_image(tmp_path / f"in.{ext}", rgb, None, fmt, 90, Metadata())
    scan = read_scan(tmp_path / f"in.{ext}")
    assert scan.bit_depth == 16 and (scan.gray % 257 != 0).any()
    write_image(tmp_path / f"out.{ext}", rgb, None, fmt, 90, scan.meta)
    data = (tmp_path / f"out.{ext}").read_bytes()
    back = {"PNG": imagecodecs.png_decode, "JPEG2000": imagecodecs.jpeg2k_decode}.get(fmt, lambda d: tifffile.imread(tmp_path / f"out.{ext}"))(data)
    assert back.dtype == np.uint16 and np.array_equal(back, rgb)  # lossless, every level


def test_jpeg2000_keeps_its_capture_resolution(tmp_path):
    y, x = np.mgrid[0:20, 0:30]
    rgb = np.dstack([x * 8, y * 12, (x + y) * 4]).astype(np.uint8)
    write_image(tmp_path / "a.jp2", rgb, None, "JPEG2000", 90, Metadata(dpi=(600.0, 600.0)))
    with Image.open(tmp_path / "a.jp2") as im:
        assert tuple(round(v) for v in im.info["dpi"]) == (600, 600)
        assert np.array_equal(np.asarray(im), rgb)  # lossless
    assert read_scan(tmp_path / "a.jp2").meta.dpi == (600.0, 600.0)


def test_a_bare_codestream_is_written_as_a_jp2_file_named_so(tmp_path):
    (tmp_path / "scans").mkdir()
    Image.fromarray(ramp()).save(tmp_path / "scans" / "plate.j2k")  # a bare codestream: no boxes
    (job,), _ = discover(tmp_path / "scans", tmp_path / "out", DiscoverOptions())
    assert (job.fmt, job.out_fmt, job.output.name) == ("JPEG2000", "JPEG2000", "plate.jp2")
