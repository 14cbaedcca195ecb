"""imaging: every input mode to upright sRGB gray, bad inputs with their reasons, atomic
16-bit-capable writing (checked with independent decoders written here)."""

from __future__ import annotations

import builtins
import errno
import io
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import piexif
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

from colorize_cli import color
from colorize_cli.io import scanfile as imaging
from colorize_cli.io.read import scan as reading
from colorize_cli.io.write import png as write_png
from colorize_cli.io.scanfile import ImageError, WriteError, read_scan, write_image
from colorize_cli.io.meta.source import Metadata


def ref_luminance(rgb: np.ndarray) -> np.ndarray:
    """The project's exact colour maths, applied the slow way."""
    return np.rint(color.rgb_to_gray(rgb.astype(np.float32) / 255.0) * 255.0).astype(np.int64)


# ------------------------------------------------------------------ independent decoders


def decode_png(path: Path) -> np.ndarray:
    """A from-the-spec PNG decoder for 8/16-bit RGB(A), row by row, used to check what
    Pillow cannot read (16-bit colour)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, depth, ctype = header[:4]
    channels = {2: 3, 6: 4}[ctype]
    bpp = channels * depth // 8
    stride = w * bpp
    raw = zlib.decompress(idat)
    out = np.zeros((h, stride), dtype=np.int64)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(h):
        ftype = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int64)
        cur = np.zeros(stride, dtype=np.int64)
        for i in range(stride):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[i] = (line[i] + pred) & 0xFF
        out[y], prev = cur, cur
    flat = out.astype(np.uint8)
    if depth == 16:
        return flat.view(">u2").astype(np.uint16).reshape(h, w, channels)
    return flat.reshape(h, w, channels)


def decode_tiff(path: Path, page: int = 0) -> np.ndarray:
    """tifffile's reading of one page (LZW + horizontal predictor, any bit depth)."""
    with tifffile.TiffFile(path) as tif:
        p = tif.pages[page]
        assert p.compression == 5 and p.predictor == 2
        return p.asarray()


# ------------------------------------------------------------------ reading: modes


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_l_png_reads_exactly(tmp_path, pattern):
    g = pattern(30, 40)
    s = read_scan(_save(Image.fromarray(g), tmp_path / "a.png"))
    assert (s.gray.dtype, s.bit_depth, s.format, s.mode, s.size) == (np.uint8, 8, "PNG", "L", (40, 30))
    assert np.array_equal(s.gray, g) and s.alpha is None
    assert s.gray.flags.writeable and s.gray.flags.c_contiguous  # callers may work in place


def test_la_png_keeps_alpha(tmp_path, pattern):
    g, a = pattern(20, 24), pattern(20, 24)[::-1].copy()
    s = read_scan(_save(Image.merge("LA", [Image.fromarray(g), Image.fromarray(a)]), tmp_path / "a.png"))
    assert s.mode == "LA" and np.array_equal(s.gray, g) and np.array_equal(s.alpha, a)
    assert s.alpha.flags.writeable


def test_bilevel_reads_as_0_and_255(tmp_path, pattern):
    g = pattern(16, 16) > 128
    s = read_scan(_save(Image.fromarray(g), tmp_path / "a.png"))
    assert s.mode == "1" and s.gray.dtype == np.uint8
    assert np.array_equal(s.gray, np.where(g, 255, 0))


@pytest.mark.parametrize("name,dtype", [("a.png", "<u2"), ("a.tif", "<u2"), ("b.tif", ">u2")])
def test_16bit_gray_keeps_all_levels(tmp_path, pattern, name, dtype):
    g = pattern(40, 50, np.uint16)
    s = read_scan(_save(Image.fromarray(g.astype(dtype)), tmp_path / name))
    assert s.mode.startswith("I;16") and s.bit_depth == 16 and s.gray.dtype == np.uint16
    assert np.array_equal(s.gray, g) and len(np.unique(s.gray)) > 256


def test_32bit_int_gray_fits_or_is_scaled_by_a_power_of_two(tmp_path, pattern):
    small = pattern(10, 12, np.uint16).astype(np.int32)
    s = read_scan(_save(Image.fromarray(small), tmp_path / "small.tif"))
    assert s.mode == "I" and s.gray.dtype == np.uint16 and np.array_equal(s.gray, small)
    big = small * 16 + 7  # max < 2**20: the smallest fitting shift is 4
    s = read_scan(_save(Image.fromarray(big), tmp_path / "big.tif"))
    assert np.array_equal(s.gray, np.clip((big + 8) >> 4, 0, 65535))


def test_float_gray_unit_range(tmp_path, pattern):
    f = pattern(10, 12).astype(np.float32) / 255.0
    s = read_scan(_save(Image.fromarray(f), tmp_path / "f.tif"))
    assert s.mode == "F" and s.bit_depth == 16
    assert np.array_equal(s.gray, np.rint(f.astype(np.float64) * 65535).astype(np.uint16))


def test_palette_gray_is_exact_and_colour_palette_is_luminance(tmp_path, pattern):
    g = pattern(12, 16)
    s = read_scan(_save(Image.fromarray(g).convert("P"), tmp_path / "g.png"))
    assert s.mode == "P" and np.array_equal(s.gray, g)

    rgb = np.dstack([pattern(12, 16), pattern(12, 16)[::-1], pattern(12, 16)[:, ::-1]])
    pal = Image.fromarray(rgb).quantize(64)
    s = read_scan(_save(pal, tmp_path / "c.png"))
    expect = ref_luminance(np.asarray(pal.convert("RGB")))
    assert np.abs(s.gray.astype(np.int64) - expect).max() <= 1


def test_palette_with_transparency_gives_alpha(tmp_path, pattern):
    im = Image.fromarray(pattern(8, 8)).convert("P")
    im.info["transparency"] = int(np.asarray(im)[0, 0])
    s = read_scan(_save(im, tmp_path / "t.png", transparency=im.info["transparency"]))
    assert s.alpha is not None and s.alpha[0, 0] == 0 and s.alpha.max() == 255


def test_sepia_rgb_and_rgba_reduce_to_luminance(tmp_path, pattern):
    g = pattern(24, 32).astype(np.float64)
    sepia = np.clip(np.dstack([g * 1.0, g * 0.85, g * 0.62]), 0, 255).astype(np.uint8)
    s = read_scan(_save(Image.fromarray(sepia), tmp_path / "s.png"))
    assert s.mode == "RGB" and s.bit_depth == 8
    assert np.abs(s.gray.astype(np.int64) - ref_luminance(sepia)).max() <= 1
    assert not np.array_equal(s.gray, sepia[..., 0])  # really luminance, not a channel

    alpha = pattern(24, 32)[:, ::-1].copy()
    s = read_scan(_save(Image.fromarray(np.dstack([sepia, alpha])), tmp_path / "s4.png"))
    assert s.mode == "RGBA" and np.array_equal(s.alpha, alpha)
    assert np.abs(s.gray.astype(np.int64) - ref_luminance(sepia)).max() <= 1


def test_luminance_fast_path_agrees_with_colour_maths():
    rgb = np.random.default_rng(3).integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
    assert np.abs(imaging.luminance8(rgb, rows_per_chunk=7).astype(np.int64) - ref_luminance(rgb)).max() <= 1


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr"])
def test_cmyk_and_ycbcr_tiff(tmp_path, pattern, mode):
    rgb = np.dstack([pattern(16, 20), pattern(16, 20)[::-1], pattern(16, 20)[:, ::-1]])
    im = Image.fromarray(rgb).convert(mode)
    s = read_scan(_save(im, tmp_path / "x.tif"))
    assert s.mode == mode and s.gray.shape == (16, 20)
    assert np.abs(s.gray.astype(np.int64) - ref_luminance(np.asarray(im.convert("RGB")))).max() <= 1


def test_lab_tiff_uses_lightness(tmp_path, pattern):
    lab = np.dstack([pattern(10, 10), np.full((10, 10), 140, np.uint8), np.full((10, 10), 120, np.uint8)])
    s = read_scan(_save(Image.frombytes("LAB", (10, 10), lab.tobytes()), tmp_path / "l.tif"))
    expect = np.rint(color.lightness_to_gray(lab[..., 0].astype(np.float32) * 100 / 255) * 255)
    assert s.mode == "LAB" and np.array_equal(s.gray, expect.astype(np.uint8))


@pytest.mark.parametrize("ext,kw", [("bmp", {}), ("gif", {}), ("webp", {"lossless": True})])
def test_other_formats(tmp_path, pattern, ext, kw):
    g = pattern(12, 14)
    im = Image.fromarray(g).convert("RGB") if ext == "webp" else Image.fromarray(g)
    s = read_scan(_save(im, tmp_path / f"a.{ext}", **kw))
    assert np.array_equal(s.gray, g) and s.format == {"bmp": "BMP", "gif": "GIF", "webp": "WEBP"}[ext]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, pattern, orientation):
    g = pattern(6, 9)
    path = _save(Image.fromarray(g), tmp_path / "o.png", exif=piexif.dump({"0th": {274: orientation}}))
    s = read_scan(path)
    with Image.open(path) as im:
        expect = np.asarray(ImageOps.exif_transpose(im))
    assert s.meta.orientation == orientation
    assert np.array_equal(s.gray, expect) and s.size == (expect.shape[1], expect.shape[0])


def test_scan_from_image_matches_read_scan_and_leaves_image_open(tmp_path, pattern):
    path = _save(Image.fromarray(pattern(6, 9)), tmp_path / "m.png", exif=piexif.dump({"0th": {274: 8}}))
    with Image.open(path) as im:
        s = imaging.scan_from_image(im)
        im.getpixel((0, 0))  # still usable
    assert np.array_equal(s.gray, read_scan(path).gray) and s.size == (6, 9)


# ------------------------------------------------------------------ reading: ICC


def littlecms_gray(icc: bytes, g: np.ndarray) -> np.ndarray:
    """The reference: LittleCMS's own gray -> sRGB conversion (unoptimised), as 8-bit gray."""
    transform = ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), "L", "RGB",
        flags=ImageCms.Flags.NOOPTIMIZE,
    )
    return np.asarray(ImageCms.applyTransform(Image.fromarray(g), transform))[..., 1]


@pytest.mark.parametrize("name", ["Gray", "Gray-CIE_L"])
def test_gray_icc_converted_like_littlecms(tmp_path, icc_profile, name):
    icc = icc_profile(name)
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    s = read_scan(_save(Image.fromarray(g), tmp_path / "g.tif", icc_profile=icc))
    expect = littlecms_gray(icc, g)
    assert np.abs(s.gray.astype(np.int64) - expect).max() <= 1
    assert np.abs(s.gray.astype(np.int64) - g).max() > 5  # the profile really changed the tones
    assert any("converted to sRGB" in n for n in s.notes)

    g16 = (np.arange(65536, dtype=np.uint32).reshape(256, 256)).astype(np.uint16)
    s16 = read_scan(_save(Image.fromarray(g16), tmp_path / "g16.png", icc_profile=icc))
    assert s16.bit_depth == 16 and len(np.unique(s16.gray)) > 4096
    # the 16-bit curve agrees with the 8-bit one on the 8-bit levels
    eight = imaging.to_8bit(s16.gray.ravel()[np.arange(256) * 257])
    assert np.abs(eight.astype(np.int64) - s.gray.ravel()).max() <= 1


SRGB_PARA = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)  # the sRGB curve as ICC parametric type 3


def _with_gray_curve(icc: bytes, curve: bytes) -> bytes:
    """A copy of a gray profile whose kTRC tag is replaced by `curve` (appended, 4-aligned)."""
    data = bytearray(icc) + b"\x00" * (-len(icc) % 4)
    (count,) = struct.unpack_from(">I", data, 128)
    for i in range(count):
        if data[132 + 12 * i : 136 + 12 * i] == b"kTRC":
            struct.pack_into(">II", data, 136 + 12 * i, len(data), len(curve))
    data += curve
    struct.pack_into(">I", data, 0, len(data))
    return bytes(data)


@pytest.mark.parametrize(
    "curve",
    [
        b"curv\0\0\0\0" + struct.pack(">I", 1) + struct.pack(">H", int(2.2 * 256)) + b"\0\0",  # Gray Gamma 2.2
        b"curv\0\0\0\0" + struct.pack(">I17H", 17, *[round(65535 * (i / 16) ** 1.8) for i in range(17)]) + b"\0\0",
        b"para\0\0\0\0" + struct.pack(">HH5i", 3, 0, *[round(v * 65536) for v in SRGB_PARA]),
        b"para\0\0\0\0" + struct.pack(">HH3i", 1, 0, *[round(v * 65536) for v in (1.8, 1.1, -0.1)]),
    ],
    ids=["gamma", "table", "para3", "para1"],
)
def test_gray_tone_curve_kinds_agree_with_littlecms(tmp_path, icc_profile, curve):
    icc = _with_gray_curve(icc_profile("Gray"), curve)
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    s = read_scan(_save(Image.fromarray(g), tmp_path / "g.png", icc_profile=icc))
    expect = littlecms_gray(icc, g)
    assert np.abs(s.gray.astype(np.int64) - expect).max() <= 1


def test_rgb_icc_converted_to_srgb_before_luminance(tmp_path, icc_profile):
    icc = icc_profile("compatibleWithAdobeRGB1998")
    rgb = np.array([[[40, 200, 60], [200, 60, 40], [120, 120, 120], [30, 60, 220]]], dtype=np.uint8)
    s = read_scan(_save(Image.fromarray(rgb), tmp_path / "a.png", icc_profile=icc))
    srgb = ImageCms.profileToProfile(
        Image.fromarray(rgb), ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"),
        outputMode="RGB",
    )
    assert np.abs(s.gray.astype(np.int64) - ref_luminance(np.asarray(srgb))).max() <= 1
    assert np.abs(s.gray.astype(np.int64) - ref_luminance(rgb)).max() >= 3  # not read as sRGB


# ------------------------------------------------------------------ reading: bad input


def test_empty_file(tmp_path):
    (tmp_path / "e.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match=r"^empty file \(0 bytes\)$"):
        read_scan(tmp_path / "e.jpg")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(tmp_path, pattern, fmt):
    buf = io.BytesIO()
    Image.fromarray(pattern(64, 64)).save(buf, fmt)
    path = tmp_path / "t.img"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match=rf"^truncated {fmt}: image file is truncated$"):
        read_scan(path)


def test_text_named_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a photo\n")
    with pytest.raises(ImageError, match=r"^not an image \(cannot identify image file\)$"):
        read_scan(tmp_path / "notes.jpg")


def _png_header_only(w: int, h: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_from_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    before = Image.MAX_IMAGE_PIXELS
    expected = r"^image too large: 100000x100000 = 10000 Mpx exceeds --max-pixels 250000000$"
    with pytest.raises(ImageError, match=expected):
        read_scan(path, 250_000_000)
    assert Image.MAX_IMAGE_PIXELS == before


def test_own_limit_replaces_pillows(tmp_path):
    # 400 Mpx is over twice Pillow's default limit, but under ours: the header must pass, so
    # the failure is about the missing pixel data, not the size.
    path = tmp_path / "big.png"
    path.write_bytes(_png_header_only(20_000, 20_000))
    with pytest.raises(ImageError) as info:
        read_scan(path, 500_000_000)
    assert "too large" not in str(info.value) and str(info.value).startswith(("truncated PNG", "corrupt PNG"))
    with pytest.raises(ImageError, match=r"^image too large: 16x16 = 0.00026 Mpx exceeds --max-pixels 100$"):
        read_scan(_save(Image.new("L", (16, 16)), tmp_path / "s.png"), 100)


def test_permission_denied(tmp_path, pattern, monkeypatch):
    path = _save(Image.fromarray(pattern(4, 4)), tmp_path / "p.png")

    def refuse(file, mode="r", *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return builtins.open(file, mode, *args, **kwargs)

    monkeypatch.setattr(reading, "open", refuse, raising=False)
    with pytest.raises(ImageError, match=r"^permission denied$"):
        read_scan(path)


def test_vanished_and_directory(tmp_path):
    with pytest.raises(ImageError, match=r"^file vanished$"):
        read_scan(tmp_path / "gone.jpg")
    (tmp_path / "d.jpg").mkdir()
    with pytest.raises(ImageError, match=r"^is a directory$"):
        read_scan(tmp_path / "d.jpg")


def test_multipage_tiff_reads_every_page_with_its_own_tags(tmp_path, pattern):
    first, second = Image.fromarray(pattern(8, 10)), Image.new("L", (10, 8), 40)
    first.save(tmp_path / "m.tif", save_all=True, append_images=[second], dpi=(300, 300))
    s = read_scan(tmp_path / "m.tif")
    assert np.array_equal(s.gray, pattern(8, 10)) and s.notes == [] and len(s.pages) == 2
    assert s.pages[1].size == (10, 8) and (s.pages[1].gray == 40).all() and s.pages[1].meta.dpi == (300.0, 300.0)


def test_animated_gif_gives_its_first_frame_with_a_note_whatever_its_name(tmp_path, pattern):
    frames = [Image.fromarray(pattern(8, 10)).convert("P"), Image.new("P", (10, 8), 3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    (tmp_path / "a.png").write_bytes((tmp_path / "a.gif").read_bytes())
    for name in ("a.gif", "a.png"):
        s = read_scan(tmp_path / name)
        assert s.format == "GIF" and s.notes == ["2 frames (GIF): only the first is colorized"] and not s.more_pages


def test_documents_are_named_not_opened(tmp_path, pattern):
    Image.fromarray(pattern(8, 8)).save(tmp_path / "a.eps")  # EPS would run Ghostscript
    with pytest.raises(ImageError, match=r"^PostScript/EPS documents are not colorized$"):
        read_scan(tmp_path / "a.eps")
    Image.fromarray(pattern(8, 8)).save(tmp_path / "a.pdf")
    with pytest.raises(ImageError, match=r"^PDF documents are not colorized$"):
        read_scan(tmp_path / "a.pdf")


def test_reading_never_writes(tmp_path, pattern):
    path = _save(Image.fromarray(pattern(8, 8)), tmp_path / "r.png", exif=piexif.dump({"0th": {274: 6}}))
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    read_scan(path)
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before


# ------------------------------------------------------------------ writing


def _rgb(pattern, h, w, dtype=np.uint8) -> np.ndarray:
    return np.dstack([pattern(h, w, dtype), pattern(h, w, dtype)[::-1], pattern(h, w, dtype)[:, ::-1]])


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("TIFF", "tif")])
def test_16bit_gray_scan_to_16bit_rgb(tmp_path, pattern, fmt, ext):
    src = _save(Image.fromarray(pattern(20, 27, np.uint16)), tmp_path / f"in.{ext}")
    scan = read_scan(src)
    rgb = np.dstack([scan.gray, scan.gray // 2 + 1000, scan.gray // 3])
    out = tmp_path / f"out.{ext}"
    write_image(out, rgb, None, fmt, 90, scan.meta)
    decoded = decode_png(out) if fmt == "PNG" else decode_tiff(out)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, rgb)
    assert len(np.unique(decoded[..., 0])) > 256
    with Image.open(out) as im:  # a second decoder: Pillow reads the top 8 bits
        assert im.size == (27, 20) and np.array_equal(np.asarray(im.convert("RGB")), (rgb >> 8).astype(np.uint8))


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("TIFF", "tif")])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_8bit_png_tiff_lossless(tmp_path, pattern, fmt, ext, with_alpha):
    rgb = _rgb(pattern, 33, 41)
    rgb[5:9, 3:30] = np.random.default_rng(1).integers(0, 256, size=(4, 27, 3))
    alpha = pattern(33, 41)[::-1].copy() if with_alpha else None
    out = tmp_path / f"o.{ext}"
    notes = write_image(out, rgb, alpha, fmt, 90, Metadata())
    with Image.open(out) as im:
        got = np.asarray(im)
    expect = rgb if alpha is None else np.dstack([rgb, alpha])
    assert np.array_equal(got, expect) and notes == []
    decoded = decode_png(out) if fmt == "PNG" else decode_tiff(out)
    assert np.array_equal(decoded, expect)


def test_16bit_rgba_with_8bit_alpha(tmp_path, pattern):
    rgb, alpha = _rgb(pattern, 9, 11, np.uint16), pattern(9, 11)
    write_image(tmp_path / "o.png", rgb, alpha, "PNG", 90, Metadata())
    decoded = decode_png(tmp_path / "o.png")
    assert np.array_equal(decoded[..., 3], alpha.astype(np.uint16) * 257)


def test_8bit_only_formats_round_and_drop_alpha(tmp_path, pattern):
    rgb = np.zeros((16, 16, 3), np.uint16)
    rgb[0, :4, 0] = [128, 129, 65535, 257 * 77 + 129]
    notes = write_image(tmp_path / "o.bmp", rgb, pattern(16, 16), "BMP", 90, Metadata())
    assert "16-bit reduced to 8 bits: BMP is 8-bit only" in notes and "alpha dropped: BMP has no alpha" in notes
    with Image.open(tmp_path / "o.bmp") as im:
        assert im.mode == "RGB" and list(np.asarray(im)[0, :4, 0]) == [0, 1, 255, 78]
    notes = write_image(tmp_path / "o.jpg", _rgb(pattern, 16, 16), pattern(16, 16), "JPEG", 90, Metadata())
    assert "alpha dropped: JPEG has no alpha" in notes
    notes = write_image(tmp_path / "o.webp", _rgb(pattern, 16, 16), pattern(16, 16), "WEBP", 90, Metadata())
    with Image.open(tmp_path / "o.webp") as im:
        assert im.mode == "RGBA" and not any("alpha" in n for n in notes)


def test_atomic_temp_name_then_replace(tmp_path, pattern, monkeypatch):
    out = tmp_path / "out.png"
    seen = []
    real = write_png.encode_png

    def spy(fp, *args):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        real(fp, *args)

    monkeypatch.setattr(write_png, "encode_png", spy)
    write_image(out, _rgb(pattern, 8, 8), None, "PNG", 90, Metadata())
    assert len(seen) == 1 and len(seen[0]) == 1 and re.fullmatch(r"\.out\.png\.[0-9a-f]{8}\.tmp", seen[0][0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("code,reason", [(errno.ENOSPC, "disk full"), (errno.EACCES, "output folder not writable")])
def test_failed_write_leaves_nothing(tmp_path, pattern, monkeypatch, fmt, code, reason):
    def fail(fp, *args, **kwargs):
        fp.write(b"partial data")
        raise OSError(code, os.strerror(code))

    if fmt == "PNG":
        monkeypatch.setattr(write_png, "encode_png", fail)
    else:
        monkeypatch.setattr(Image.Image, "save", lambda self, fp, *a, **k: fail(fp))
    out = tmp_path / "out.img"
    with pytest.raises(WriteError, match=rf"^{reason}$"):
        write_image(out, _rgb(pattern, 8, 8), None, fmt, 90, Metadata())
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_old_file(tmp_path, pattern, monkeypatch):
    out = tmp_path / "out.png"
    out.write_bytes(b"previous result")

    def fail(fp, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(write_png, "encode_png", fail)
    with pytest.raises(WriteError, match="^disk full$"):
        write_image(out, _rgb(pattern, 8, 8), None, "PNG", 90, Metadata())
    assert out.read_bytes() == b"previous result" and [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_keep_times_and_permissions(tmp_path, pattern):
    src = _save(Image.fromarray(pattern(8, 8)), tmp_path / "in.png")
    os.utime(src, ns=(1_000_000_000_000_000_000, 1_000_000_123_000_000_000))
    old_umask = os.umask(0o022)
    try:
        write_image(tmp_path / "kept.png", _rgb(pattern, 8, 8), None, "PNG", 90, Metadata(), keep_times_from=src)
        write_image(tmp_path / "now.png", _rgb(pattern, 8, 8), None, "PNG", 90, Metadata())
    finally:
        os.umask(old_umask)
    assert os.stat(tmp_path / "kept.png").st_mtime_ns == 1_000_000_123_000_000_000
    assert os.stat(tmp_path / "now.png").st_mtime_ns != 1_000_000_123_000_000_000
    assert os.stat(tmp_path / "now.png").st_mode & 0o777 == 0o644


def test_keep_times_from_vanished_input_is_a_note(tmp_path, pattern):
    gone = tmp_path / "gone.png"
    notes = write_image(tmp_path / "o.png", _rgb(pattern, 4, 4), None, "PNG", 90, Metadata(), keep_times_from=gone)
    assert notes == ["times not kept: No such file or directory"] and (tmp_path / "o.png").exists()


def test_many_strips_and_chunks(tmp_path, pattern):
    rgb = _rgb(pattern, 90, 1500, np.uint16)  # 9000-byte rows: 29 rows a TIFF strip, 4 strips
    write_image(tmp_path / "o.tif", rgb, None, "TIFF", 90, Metadata())
    with Image.open(tmp_path / "o.tif") as im:
        assert len(im.tag_v2[273]) > 1
    assert np.array_equal(decode_tiff(tmp_path / "o.tif"), rgb)
    alpha = pattern(90, 1500, np.uint16)
    write_image(tmp_path / "o.png", rgb, alpha, "PNG", 90, Metadata())
    with Image.open(tmp_path / "o.png") as im:  # Pillow un-filters every row: the top bytes must match
        assert np.array_equal(np.asarray(im), (np.dstack([rgb, alpha]) >> 8).astype(np.uint8))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_colour_input_is_read_at_16_bits(tmp_path, pattern, fmt):
    rgb = _rgb(pattern, 10, 12, np.uint16)
    alpha = pattern(10, 12, np.uint16)
    write_image(tmp_path / "c16", rgb, alpha, fmt, 90, Metadata())
    s = read_scan(tmp_path / "c16")
    assert s.bit_depth == 16 and s.gray.dtype == np.uint16 and s.notes == []
    expected = np.rint(color.rgb_to_gray(rgb.astype(np.float64) / 65535.0) * 65535.0)
    assert np.abs(s.gray.astype(np.int64) - expected).max() <= 2 and (s.gray % 257 != 0).any()  # not 8 bits
    assert np.array_equal(s.alpha, alpha)


def test_bad_arguments(tmp_path, pattern):
    with pytest.raises(WriteError, match="unsupported output format GIF"):
        write_image(tmp_path / "a.gif", _rgb(pattern, 4, 4), None, "GIF", 90, Metadata())
    with pytest.raises(WriteError, match="need \\(H, W, 3\\)"):
        write_image(tmp_path / "a.png", pattern(4, 4), None, "PNG", 90, Metadata())
    assert list(tmp_path.iterdir()) == []


def ifd_tags(data: bytes, offset: int | None = None) -> list[int]:
    """Tag numbers of one TIFF IFD, in file order (the first IFD when offset is None)."""
    endian = ">" if data[:2] == b"MM" else "<"
    if offset is None:
        (offset,) = struct.unpack_from(endian + "I", data, 4)
    (count,) = struct.unpack_from(endian + "H", data, offset)
    return [struct.unpack_from(endian + "H", data, offset + 2 + 12 * i)[0] for i in range(count)]


def test_tiff_output_ifds_are_sorted(tmp_path, pattern):
    exif = piexif.dump({"0th": {271: b"Epson"}, "Exif": {36867: b"1931:06:01 05:30:00", 41729: b"\x01"}})
    write_image(tmp_path / "o.tif", _rgb(pattern, 6, 7), None, "TIFF", 90, Metadata(exif=exif, xmp=b"<x/>"))
    data = (tmp_path / "o.tif").read_bytes()
    tags = ifd_tags(data)
    assert data[:2] == b"MM" and tags == sorted(tags) and {34665, 34675, 700} <= set(tags)
    with Image.open(tmp_path / "o.tif") as im:
        exif_offset = im.tag_v2[34665]
    sub = ifd_tags(data, exif_offset)
    assert sub == sorted(sub) and {36867, 41729} <= set(sub) and 40962 not in sub  # TIFF states its size itself
    write_image(tmp_path / "bare.tif", _rgb(pattern, 6, 7), None, "TIFF", 90, Metadata())
    assert 34665 not in ifd_tags((tmp_path / "bare.tif").read_bytes())  # no Exif IFD invented
