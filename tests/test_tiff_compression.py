"""TIFF output compression: lzw (the default), deflate (zlib's fastest level) or none; the
compressed ones with the horizontal predictor.

Read back by ImageMagick and exiftool, not by our own reader. The speed check compares CPU time,
which a shared machine disturbs far less than wall time, in one process."""

import shutil
import subprocess
import time
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from colorize_cli.io.scanfile import WriteError, write_image
from colorize_cli.io.meta.source import Metadata


def _grainy(h, w, dtype, seed=0):
    """Smooth shading plus film grain: what a scanner gives, and hard for deflate."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.35 * np.sin(xx / 97.0)[..., None] * np.cos(yy / 61.0)[..., None]
    img = base + rng.normal(0, 0.005, (h, w, 3))
    return np.clip(np.rint(img * top), 0, top).astype(dtype)


def _magick_pixels(path: Path, dtype) -> np.ndarray:
    convert = shutil.which("convert") or shutil.which("magick")
    assert convert, "ImageMagick is needed: apt-get install imagemagick"
    depth = 16 if dtype == np.uint16 else 8
    raw = subprocess.run([convert, str(path), "-depth", str(depth), "-endian", "MSB", "rgb:-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=">u2" if depth == 16 else np.uint8).astype(dtype)


def _exif_compression(path: Path) -> str:
    assert shutil.which("exiftool"), "exiftool is needed: apt-get install libimage-exiftool-perl"
    return subprocess.run(["exiftool", "-s3", "-Compression", str(path)], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("compression,tag", [("lzw", "LZW"), ("deflate", "Adobe Deflate"), ("none", "Uncompressed")])
def test_tiff_compressions_read_back_exactly(tmp_path: Path, dtype, compression: str, tag: str) -> None:
    rgb = _grainy(75, 130, dtype)
    path = tmp_path / "o.tif"
    write_image(path, rgb, None, "TIFF", 92, Metadata(), tiff_compression=compression)
    assert _exif_compression(path) == tag
    np.testing.assert_array_equal(_magick_pixels(path, dtype), rgb.reshape(-1))
    if compression == "none":
        assert path.stat().st_size > rgb.nbytes  # the pixels as they are, plus the tags
    elif compression == "deflate":
        assert path.stat().st_size < rgb.nbytes  # (LZW can grow grainy pixels: no size claim for it)


def test_unknown_tiff_compression_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "o.tif"
    with pytest.raises(WriteError, match="unknown TIFF compression 'lzma': use lzw, deflate, none"):
        write_image(path, _grainy(8, 8, np.uint8), None, "TIFF", 92, Metadata(), tiff_compression="lzma")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("compression", ["lzw", "deflate"])
def test_tiff_write_costs_at_most_3x_its_compressor_on_the_same_pixels(tmp_path: Path, compression: str) -> None:
    """The issue's bound: writing a 16-bit TIFF costs at most 3x compressing the same bytes with
    the same library in its fastest mode (LZW has one mode; zlib's fastest is level 1)."""
    rgb = _grainy(1000, 1500, np.uint16, seed=3)  # 9 MB of 16-bit RGB
    raw = rgb.astype(">u2").tobytes()

    def cpu(fn) -> float:
        best = float("inf")
        for _ in range(3):
            t = time.process_time()
            fn()
            best = min(best, time.process_time() - t)
        return best

    fastest = (lambda: imagecodecs.lzw_encode(raw)) if compression == "lzw" else (lambda: zlib.compress(raw, 1))
    floor = cpu(fastest)
    write = cpu(lambda: write_image(tmp_path / "o.tif", rgb, None, "TIFF", 92, Metadata(), tiff_compression=compression))
    assert write <= 3 * floor, f"TIFF write {write:.3f} s CPU, {compression} alone {floor:.3f} s"


def test_colorize_dir_refuses_an_unknown_tiff_compression(tmp_path: Path) -> None:
    import sys

    (tmp_path / "in").mkdir()
    proc = subprocess.run([sys.executable, "-c", "from colorize_cli.cli.app import dir_main; dir_main()", str(tmp_path / "in"),
                           "--out", str(tmp_path / "out"), "--tiff-compression", "lzma"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "--tiff-compression must be lzw, deflate or none, not 'lzma'" in proc.stderr
    assert not (tmp_path / "out").exists()
