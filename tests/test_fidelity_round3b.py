"""Issue 42, second part, judged by exiftool: a PNG's own chunks (gamma, chromaticities,
background, time, orientation, compressed text), a PNM comment, a PCX scan, a truncated JPEG
2000, a GIF's XMP and ICC profile, a PSD's metadata in its TIFF copy, and a JPEG 2000 file's
other boxes and codestream comments. Each input is made here (by exiftool where it writes the
thing, by Pillow or by hand where it does not) and goes through the real `colorize-dir`."""

from __future__ import annotations

import functools
import io
import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import ICC_DIR
from test_fidelity import colorize_dir, exiftool, ramp, warnings
from test_fidelity import tags as read_tags

LONG_TEXT = "Blick ueber den Hafen bei Nacht, 1931, vom Turm der Michaeliskirche. " * 6
XMP = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""'
       b' xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title><rdf:Alt><rdf:li xml:lang="x-default">Hafen</rdf:li>'
       b"</rdf:Alt></dc:title><dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">" + LONG_TEXT.encode()
       + b"</rdf:li></rdf:Alt></dc:description></rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end=\"w\"?>")
GEO_UUID = bytes.fromhex("b14bf8bd083d4b43a5ae8cd7d5a6ce03")
COMMENT = b"Scan 1931, Stadtarchiv Hamburg"


@functools.lru_cache(maxsize=None)
def tags(path: Path) -> dict[str, object]:
    """exiftool's tags of a file (each file is read once: the files do not change)."""
    return read_tags(path)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def with_chunks(png: bytes, before: list[tuple[bytes, bytes]], after: list[tuple[bytes, bytes]] = ()) -> bytes:
    """`before` put just before the first IDAT, `after` just before IEND."""
    idat, iend = png.index(b"IDAT") - 4, png.rindex(b"IEND") - 4
    return (png[:idat] + b"".join(chunk(k, d) for k, d in before) + png[idat:iend]
            + b"".join(chunk(k, d) for k, d in after) + png[iend:])


def png_chunk_types(path: Path) -> list[str]:
    """The chunk types exiftool lists, in file order."""
    return re.findall(r"^PNG (\w{4}) ", exiftool("-v", path).decode(), re.M)


def itxt_xmp_compressed(path: Path) -> bool:
    data = path.read_bytes()
    at = data.index(b"iTXtXML:com.adobe.xmp\x00")
    return data[at + 22] == 1


def psd(gray: np.ndarray, resources: bytes) -> bytes:
    """A one-channel 8-bit gray PSD, raw image data, with these image resources."""
    h, w = gray.shape
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, 1, h, w, 8, 1)
    return (head + struct.pack(">I", 0) + struct.pack(">I", len(resources)) + resources + struct.pack(">I", 0)
            + struct.pack(">H", 0) + gray.tobytes())


def resource(rid: int, data: bytes) -> bytes:
    return b"8BIM" + struct.pack(">HHI", rid, 0, len(data)) + data + b"\x00" * (len(data) % 2)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def geojp2() -> bytes:
    """A GeoJP2 box body: its uuid and a 1x1 GeoTIFF holding the pixel scale and tie point."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((1, 1), np.uint8), extratags=[(33550, "d", 3, (0.5, 0.5, 0.0)),
                                                                 (33922, "d", 6, (0, 0, 0, 565000.0, 5934000.0, 0))])
    return GEO_UUID + buf.getvalue()


def bigtiff(gray: np.ndarray, artist: bytes) -> bytes:
    """A little-endian BigTIFF of one uncompressed gray strip, with an Artist and no resolution."""
    h, w = gray.shape
    pixels = gray.tobytes()
    ifd_at = 16 + len(pixels) + len(pixels) % 2
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 16, 1, 16),
               (277, 3, 1, 1), (278, 4, 1, h), (279, 16, 1, len(pixels)), (315, 2, len(artist), None)]
    artist_at = ifd_at + 8 + 20 * len(entries) + 8
    table = b"".join(struct.pack("<HHQQ", tag, kind, count, artist_at if value is None else value)
                     for tag, kind, count, value in entries)
    head = b"II" + struct.pack("<HHHQ", 43, 8, 0, ifd_at)
    return (head + pixels + b"\x00" * (len(pixels) % 2) + struct.pack("<Q", len(entries)) + table
            + struct.pack("<Q", 0) + artist)


def build(root: Path, adobe_rgb: bytes) -> None:
    root.mkdir()
    g = ramp()
    ow = ("-q", "-q", "-overwrite_original")
    # PNG: exiftool writes gamma, time and compressed text; Pillow a compressed iTXt; by hand the
    # chunks neither writes (chromaticities, background, significant bits, a transparent key, the
    # sRGB intent, orientation, offset, a private safe-to-copy and an unsafe one, text after IDAT)
    Image.fromarray(g).save(root / "chunks.png")
    exiftool(*ow, "-z", "-PNG:Gamma=2.2", "-PNG:ModifyDate=2020:01:01 10:00:00", f"-PNG:Description={LONG_TEXT}",
             f"-PNG:Title-de={LONG_TEXT}", root / "chunks.png")
    chrm = struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)
    xmp = b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(XMP)
    data = with_chunks((root / "chunks.png").read_bytes(), [
        (b"sRGB", b"\x00"), (b"cHRM", chrm), (b"sBIT", b"\x05"), (b"bKGD", b"\x00\x80"), (b"tRNS", b"\x00\x07"),
        (b"orNT", b"\x01"), (b"oFFs", struct.pack(">iiB", 120, -40, 0)), (b"iTXt", xmp),
        (b"scNr", b"scanner private, safe to copy"), (b"scNR", b"scanner private, unsafe"),
    ], [(b"tEXt", b"Source\x00Glasplatte 13x18")])
    (root / "chunks.png").write_bytes(data)
    # a 16-bit PNG's background, 16 bits
    buf = io.BytesIO()
    Image.fromarray(g.astype(np.uint16) * 257).save(buf, "PNG")
    (root / "deep.png").write_bytes(with_chunks(buf.getvalue(), [(b"bKGD", b"\x12\x34")]))
    # a PGM whose header has comments
    (root / "comment.pgm").write_bytes(b"P5\n# Scan 1931\n# Hafen, M\xfcller\n64 48\n255\n" + g.tobytes())
    # PCX (Pillow writes one, with its resolution)
    Image.fromarray(g).save(root / "print.pcx")  # Pillow states 100 dpi
    # a JPEG 2000 cut short: a few KB of a file that declares a large image
    buf = io.BytesIO()
    big = np.tile(g, (16, 16))
    Image.fromarray(big).save(buf, "JPEG2000", irreversible=False)
    (root / "cut.jp2").write_bytes(buf.getvalue()[:3000])
    # GIF with XMP and an Adobe RGB profile, both written by exiftool
    Image.fromarray(g).save(root / "scan.gif")
    (root / "adobe.icc").write_bytes(adobe_rgb)
    exiftool(*ow, "-XMP-dc:Title=Hafen", "-ICC_Profile<=" + str(root / "adobe.icc"), root / "scan.gif")
    (root / "adobe.icc").unlink()
    # PSD (by hand, with its resolution) whose IPTC, XMP, EXIF and Photoshop tags exiftool writes
    resolution = struct.pack(">IHHIHH", 300 << 16, 1, 1, 300 << 16, 1, 1)
    (root / "layered.psd").write_bytes(psd(g, resource(0x03ED, resolution)))
    exiftool(*ow, "-IPTC:Caption-Abstract=Hafen bei Nacht", "-IPTC:By-line=Hans", "-XMP-dc:Title=Hafen",
             "-EXIF:Artist=Hans Mueller", "-EXIF:Copyright=Stadtarchiv", "-Photoshop:URL=https://example.org/hafen",
             "-EXIF:XResolution=300", "-EXIF:YResolution=300", "-EXIF:ResolutionUnit=inches",
             root / "layered.psd")
    # JPEG 2000 with a codestream comment (Pillow), an XML box and a GeoJP2 box (by hand)
    buf = io.BytesIO()
    Image.fromarray(g).save(buf, "JPEG2000", irreversible=False, comment=COMMENT)
    data = buf.getvalue()
    at = data.index(b"jp2c") - 4
    xml = b'<?xml version="1.0"?><archive><shelf>B 12</shelf><box>Hafen 1931</box></archive>'
    (root / "geo.jp2").write_bytes(data[:at] + box(b"xml ", xml) + box(b"uuid", geojp2()) + data[at:])
    # a BigTIFF with no resolution, by hand (exiftool writes no BigTIFF; tifffile always states a resolution)
    (root / "big.btf").write_bytes(bigtiff(g, b"Hans Mueller\x00"))


@pytest.fixture(scope="module")
def run(tmp_path_factory, random_weights):
    root = tmp_path_factory.mktemp("round3b")
    src, out = root / "in", root / "out"
    build(src, (ICC_DIR / "compatibleWithAdobeRGB1998.icc").read_bytes())
    result = colorize_dir(src, out, random_weights)
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return src, out, {r["input"]: r for r in records if r.get("type") == "file"}


def test_png_chunks_kept_byte_for_byte_in_their_places(run):
    src, out, records = run
    before, after = tags(src / "chunks.png"), tags(out / "chunks.png")
    for tag in ("PNG:Gamma", "PNG:WhitePointX", "PNG:RedX", "PNG:BlueY", "PNG:ModifyDate", "PNG:Description",
                "PNG:Title-de", "PNG:ImageOffset", "PNG:SRGBRendering", "PNG:Source", "XMP-dc:Title",
                "XMP-dc:Description"):
        assert tag in before, tag
        assert after.get(tag) == before[tag], tag
    assert warnings(out / "chunks.png") <= warnings(src / "chunks.png")
    kinds_in, kinds_out = png_chunk_types(src / "chunks.png"), png_chunk_types(out / "chunks.png")
    # every chunk in its place but the pixel-bound ones; the sRGB chunk is the profile, so no iCCP
    assert kinds_out == [k for k in kinds_in if k not in ("sBIT", "tRNS", "scNR")], (kinds_in, kinds_out)
    assert not [k for k in after if k.startswith("ICC")]
    data = (out / "chunks.png").read_bytes()
    assert chunk(b"orNT", b"\x01") in data and chunk(b"scNr", b"scanner private, safe to copy") in data
    assert b"scNR" not in data
    notes = " | ".join(records["chunks.png"]["notes"])
    for name in ("sBIT", "tRNS", "scNR"):
        assert name in notes, notes


def test_png_text_stays_compressed_as_it_was(run):
    src, out, _ = run
    verbose = exiftool("-v", out / "chunks.png").decode()
    assert "PNG zTXt" in verbose  # the compressed Description
    assert itxt_xmp_compressed(src / "chunks.png") and itxt_xmp_compressed(out / "chunks.png")
    assert tags(out / "chunks.png")["XMP-colorize:Tool"] == "colorize-cli"
    raw_in = exiftool("-b", "-PNG:Title-de", src / "chunks.png")
    assert raw_in == exiftool("-b", "-PNG:Title-de", out / "chunks.png") == LONG_TEXT.encode()


def test_png_background_names_the_same_gray_in_rgb(run):
    src, out, _ = run
    assert tags(src / "chunks.png")["PNG:BackgroundColor"] == 128
    assert tags(out / "chunks.png")["PNG:BackgroundColor"] == "128 128 128"
    assert tags(src / "deep.png")["PNG:BackgroundColor"] == 0x1234
    after = tags(out / "deep.png")
    assert after["PNG:BitDepth"] == 16 and after["PNG:BackgroundColor"] == "4660 4660 4660"


def test_pnm_comment_kept(run):
    src, out, _ = run
    before = exiftool("-b", "-Comment", src / "comment.pgm")  # as stored: Latin-1
    assert before == b"Scan 1931\nHafen, M\xfcller"
    assert exiftool("-b", "-charset", "Latin", "-PNG:Comment", out / "comment.png") == before  # a Latin-1 tEXt


def test_pcx_is_colorized_as_png_with_its_resolution(run):
    src, out, records = run
    assert records["print.pcx"]["status"] == "done", records["print.pcx"]
    assert records["print.pcx"]["output"] == "print.png"
    before, after = tags(src / "print.pcx"), tags(out / "print.png")
    assert before["File:XResolution"] == 100
    assert round(after["PNG-pHYs:PixelsPerUnitX"] * 0.0254) == 100 and after["PNG-pHYs:PixelUnits"] == "meters"


def test_a_cut_jpeg_2000_is_truncated_not_corrupt(run):
    _, _, records = run
    record = records["cut.jp2"]
    assert record["status"] == "failed" and record["kind"] == "input truncated", record
    assert record["reason"].startswith("truncated JPEG2000"), record


def test_gif_xmp_and_icc_profile_kept(run):
    src, out, records = run
    before, after = tags(src / "scan.gif"), tags(out / "scan.png")
    assert before["XMP-dc:Title"] == "Hafen" and after["XMP-dc:Title"] == "Hafen"
    desc = before["ICC_Profile:ProfileDescription"]
    assert "Adobe" in desc or "Compatible" in desc, desc
    assert after["ICC_Profile:ProfileDescription"] == desc
    assert not [n for n in records["scan.gif"]["notes"] if "XMP" in n or "ignored" in n or "not kept" in n]


def test_psd_to_tiff_keeps_its_metadata(run):
    src, out, records = run
    assert records["layered.psd"]["output"] == "layered.tif"
    before, after = tags(src / "layered.psd"), tags(out / "layered.tif")
    for tag in ("IPTC:Caption-Abstract", "IPTC:By-line", "XMP-dc:Title", "Photoshop:URL", "Photoshop:XResolution"):
        assert tag in before, tag
        assert after.get(tag) == before[tag], tag
    assert before["IFD0:Artist"] == after["IFD0:Artist"] == "Hans Mueller"
    assert before["IFD0:Copyright"] == after["IFD0:Copyright"] == "Stadtarchiv"
    assert after["IFD0:XResolution"] == 300 and after["IFD0:ResolutionUnit"] == "inches"
    assert warnings(out / "layered.tif") <= warnings(src / "layered.psd")


def test_jpeg_2000_boxes_and_codestream_comment_kept(run):
    src, out, records = run
    before, after = tags(src / "geo.jp2"), tags(out / "geo.jp2")
    geo = {k: v for k, v in before.items() if k.startswith(("IFD0:PixelScale", "IFD0:ModelTiePoint", "XML"))}
    assert len(geo) >= 3, before
    assert {k: after.get(k) for k in geo} == geo
    assert warnings(out / "geo.jp2") <= warnings(src / "geo.jp2")
    data = (out / "geo.jp2").read_bytes()
    assert b"\xff\x64" + struct.pack(">H", len(COMMENT) + 4) + b"\x00\x01" + COMMENT in data
    assert b"OpenJPEG" not in data  # the input's comment replaces the encoder's own
    assert records["geo.jp2"]["notes"] == []


def test_a_bigtiff_stays_a_bigtiff_and_invents_no_resolution(run):
    src, out, records = run
    assert records["big.btf"]["output"] == "big.btf"
    before, after = tags(src / "big.btf"), tags(out / "big.btf")
    assert before["File:FileType"] == after["File:FileType"] == "BTF"
    assert after["IFD0:Artist"] == before["IFD0:Artist"] == "Hans Mueller"
    assert "IFD0:XResolution" not in after
    assert warnings(out / "big.btf") <= warnings(src / "big.btf")


def test_extended_xmp_of_a_jpeg_merged_into_other_formats(tmp_path):
    """XMP over 64 KB, which exiftool splits into extended-XMP segments in a JPEG, is whole in a
    format that holds a packet of any size."""
    from colorize_cli.io.read.scan import read_scan  # noqa: PLC0415
    from colorize_cli.io.write.pages import Page, write_pages  # noqa: PLC0415

    src = tmp_path / "ext.jpg"
    Image.fromarray(ramp()).save(src, quality=90)
    exiftool("-q", "-overwrite_original", "-XMP-dc:Title=Hafen", "-XMP-dc:Description=" + "Hafen bei Nacht. " * 5000,
             src)
    before = tags(src)
    assert before["XMP-xmpNote:HasExtendedXMP"] and len(before["XMP-dc:Description"]) == 17 * 5000
    scan = read_scan(src)
    for fmt, name in (("PNG", "ext.png"), ("JPEG2000", "ext.jp2")):
        notes, _ = write_pages(tmp_path / name, [Page(np.dstack([scan.gray] * 3), None, scan.meta)], fmt, 90)
        after = tags(tmp_path / name)
        assert after["XMP-dc:Description"] == before["XMP-dc:Description"], fmt
        assert after["XMP-dc:Title"] == "Hafen" and "XMP-xmpNote:HasExtendedXMP" not in after, fmt
        assert warnings(tmp_path / name) <= warnings(src) and not [n for n in notes if "XMP" in n], fmt


def test_a_tifffile_shape_description_is_replaced_so_tifffile_reads_the_output(tmp_path):
    """tifffile writes {"shape": [h, w]} as ImageDescription; the colour output is (h, w, 3): kept
    (with our marker appended) it made tifffile fail on the output. Judged by tifffile itself."""
    import subprocess
    import sys

    import numpy as np
    import tifffile

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    gray = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) % 251).astype(np.uint8)
    tifffile.imwrite(src / "shaped.tif", gray)  # tifffile's default: shaped JSON description
    assert tifffile.TiffFile(src / "shaped.tif").pages[0].description.startswith('{"shape"')
    run = subprocess.run([sys.executable, "-m", "colorize_cli", "dir", str(src), "--out", str(out), "--device", "cpu", "-q"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rgb = tifffile.imread(out / "shaped.tif")
    assert rgb.shape == (48, 64, 3)
    description = tifffile.TiffFile(out / "shaped.tif").pages[0].description
    assert description.startswith("[colorized by colorize-cli ") and '"shape"' not in description
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    notes = next(r for r in records if r.get("input") == "shaped.tif")["notes"]
    assert any("tifffile's array shape" in n for n in notes)
