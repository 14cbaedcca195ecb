"""The I/O layer's entry points, for the engine, the API and the benchmark: reading scans
(`reading`), writing results (`writing`). Each job lives in its own module:

    formats.py        which files are scans, and what each is written as
    reading.py        decode every page to sRGB gray (+ alpha), upright
    grayscale.py      pure pixel maths: luminance, bit depths, orientation
    icc.py            ICC profiles in and out
    metadata.py       what a scan says about itself, read raw
    tiff_ifd.py       TIFF/EXIF directories as raw entries, read and laid out
    irb.py            Photoshop resource blocks (IPTC's container)
    provenance.py     the XMP every output gets: colorized by a trained model, from what
    carry.py          what each output format carries of the input's metadata
    writing.py        atomic writes, pages, format dispatch
    write_png.py, write_tiff.py, write_pillow.py   the encoders
"""

from __future__ import annotations

from colorize_cli.io.read.grayscale import luminance8, orient, to_8bit
from colorize_cli.io.read.scan import READ_FORMATS, ImageError, Scan, read_scan, scan_from_image
from colorize_cli.discover.outnames import page_path
from colorize_cli.io.write.pages import WRITE_FORMATS, Page, WriteError, write_image, write_pages

__all__ = [
    "READ_FORMATS", "WRITE_FORMATS", "ImageError", "Page", "Scan", "WriteError", "luminance8", "orient",
    "page_path", "read_scan", "scan_from_image", "to_8bit", "write_image", "write_pages",
]
