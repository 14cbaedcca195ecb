"""Issue 42, judged by exiftool: what a scan carries that our earlier writer moved, rewrote or
dropped. Each input is made here, by exiftool where exiftool can write the thing, by hand where
it cannot (a Canon MakerNote, UTF-16 XMP, unknown APPn segments, a trailer), and goes through the
real `colorize-dir`; exiftool reads input and output and must see the same."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from test_fidelity import colorize_dir, exiftool, ramp, tags, warnings

OWNER = "Hans Mueller, Stadtarchiv"


def canon_exif() -> bytes:
    """b"Exif\\0\\0" + an EXIF block whose Canon MakerNote points at its OwnerName by an offset
    from the TIFF header, as Canon's do; a long caption in front of it, so a writer that lays the
    IFDs out afresh would move it."""
    caption = b"Blick ueber den Hafen, 1931. " * 8 + b"\x00"
    make, model = b"Canon\x00", b"Canon EOS 5D\x00"
    ifd0_at = 8
    ifd0_size = 2 + 4 * 12 + 4
    caption_at = ifd0_at + ifd0_size
    make_at = caption_at + len(caption)
    model_at = make_at + len(make) + len(make) % 2
    exif_at = model_at + len(model) + len(model) % 2
    exif_size = 2 + 1 * 12 + 4
    note_at = exif_at + exif_size
    owner = OWNER.encode("ascii").ljust(32, b"\x00")
    note = struct.pack("<H", 1) + struct.pack("<HHII", 0x0009, 2, 32, note_at + 2 + 12 + 4) + struct.pack("<I", 0) + owner
    ifd0 = struct.pack("<H", 4) + b"".join(
        struct.pack("<HHII", tag, kind, count, value)
        for tag, kind, count, value in (
            (0x010E, 2, len(caption), caption_at), (0x010F, 2, len(make), make_at),
            (0x0110, 2, len(model), model_at), (0x8769, 4, 1, exif_at),
        )
    ) + struct.pack("<I", 0)  # fmt: skip
    exif_ifd = struct.pack("<H", 1) + struct.pack("<HHII", 0x927C, 7, len(note), note_at) + struct.pack("<I", 0)
    body = bytearray(b"II*\x00" + struct.pack("<I", ifd0_at) + ifd0 + caption)
    for at, data in ((make_at, make), (model_at, model), (exif_at, exif_ifd), (note_at, note)):
        body += b"\x00" * (at - len(body)) + data
    return b"Exif\x00\x00" + bytes(body)


def insert_segments(jpeg: bytes, segments: list[tuple[int, bytes]]) -> bytes:
    """`segments` put right after SOI."""
    return jpeg[:2] + b"".join(bytes([0xFF, m]) + struct.pack(">H", len(p) + 2) + p for m, p in segments) + jpeg[2:]


def utf16_xmp() -> bytes:
    text = (
        "<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>\n"
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'>\n<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\n"
        " <rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/'>\n"
        "  <dc:title><rdf:Alt><rdf:li xml:lang='x-default'>Hafen bei Nacht</rdf:li></rdf:Alt></dc:title>\n"
        "  <dc:creator><rdf:Seq><rdf:li>Hans Müller</rdf:li></rdf:Seq></dc:creator>\n"
        " </rdf:Description>\n</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end='w'?>"
    )
    return text.encode("utf-16-be")


def photoshop_irb() -> bytes:
    def resource(rid: int, data: bytes) -> bytes:
        return b"8BIM" + struct.pack(">HHI", rid, 0, len(data)) + data + b"\x00" * (len(data) % 2)

    iptc = b"\x1c\x02\x00\x00\x02\x00\x04" + b"\x1c\x02\x78\x00\x05Hafen"  # record version, caption
    resolution = struct.pack(">IHHIHH", 300 << 16, 1, 2, 300 << 16, 1, 2)  # 300 dpi, shown in cm
    return (resource(0x03ED, resolution) + resource(0x0404, iptc) + resource(0x040A, b"\x01")
            + resource(0x040B, b"https://example.org/hafen"))


TRAILER = b"ARCHIVE-TRAILER\x00" + bytes(range(64))


def build(root: Path) -> None:
    root.mkdir()
    g = ramp()
    buf = io.BytesIO()
    Image.fromarray(g).save(buf, "JPEG", quality=90, exif=canon_exif())
    (root / "canon.jpg").write_bytes(buf.getvalue())
    # the same MakerNote in a TIFF, where exiftool put it (after the strips, far from the header)
    Image.fromarray(g).save(root / "canon.tif")
    exiftool("-q", "-overwrite_original", "-tagsfromfile", root / "canon.jpg", "-makernotes", "-make", "-model",
             "-XResolution=300", "-YResolution=300", "-ResolutionUnit=inches", root / "canon.tif")
    # Photoshop resources beside the IPTC: resolution info (which Pillow's reader turns into numbers),
    # copyright flag, URL, as Photoshop writes them
    buf = io.BytesIO()
    Image.fromarray(g).save(buf, "JPEG", quality=90)
    (root / "irb.jpg").write_bytes(insert_segments(buf.getvalue(), [(0xED, b"Photoshop 3.0\x00" + photoshop_irb())]))
    # UTF-16 XMP (exiftool reads it; only hand-written files have it)
    buf = io.BytesIO()
    Image.fromarray(g).save(buf, "JPEG", quality=90, xmp=utf16_xmp())
    (root / "utf16.jpg").write_bytes(buf.getvalue())
    # XMP whose descriptions are about a uuid
    Image.fromarray(g).save(root / "about.jpg", quality=90)
    exiftool("-q", "-overwrite_original", "-XMP-rdf:About=uuid:80056b68-1045-fa97-3401-6f4ed84cd53d",
             "-XMP-dc:Title=Hafen", root / "about.jpg")
    # unknown APPn segments, a Ducky segment (exiftool), two comments and a trailer
    Image.fromarray(g).save(root / "segments.jpg", quality=90)
    exiftool("-q", "-overwrite_original", "-Ducky:Quality=80", "-Ducky:Copyright=Stadtarchiv", root / "segments.jpg")
    data = (root / "segments.jpg").read_bytes()
    data = insert_segments(data, [(0xE9, b"SCANNER\x00" + bytes(range(200))), (0xFE, b"first comment"),
                                  (0xFE, "zweiter Kommentar, Müller".encode("latin-1"))])
    (root / "segments.jpg").write_bytes(data + TRAILER)
    # 16-bit colour, planar (one plane a sample), as some scanners write it
    rgb = np.stack([ramp().astype(np.uint16) * 257] * 3)
    tifffile.imwrite(root / "planar16.tif", rgb, photometric="rgb", planarconfig="separate", resolution=(300, 300),
                     resolutionunit="INCH")
    # TIFF colorimetry tags
    Image.fromarray(g).save(root / "white.tif")
    exiftool("-q", "-overwrite_original", "-WhitePoint=0.3127 0.329", "-XResolution=300", "-YResolution=300",
             "-ResolutionUnit=inches", "-PrimaryChromaticities=0.64 0.33 0.3 0.6 0.15 0.06", root / "white.tif")


@pytest.fixture(scope="module")
def run(tmp_path_factory, random_weights):
    root = tmp_path_factory.mktemp("issue42")
    src, out = root / "in", root / "out"
    build(src)
    result = colorize_dir(src, out, random_weights)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return src, out, {r["input"]: r for r in records if r.get("type") == "file"}


def same(before: dict, after: dict, prefix: str) -> dict:
    """Tags of a group (family 1 prefix) that differ between input and output."""
    return {k: (v, after.get(k)) for k, v in before.items() if k.startswith(prefix) and after.get(k) != v}


@pytest.mark.parametrize("name", ["canon.jpg", "canon.tif"])
def test_makernote_stays_where_its_offsets_point(run, name):
    src, out, _ = run
    before, after = tags(src / name), tags(out / name)
    assert before["Canon:OwnerName"] == OWNER  # exiftool reads the input's note
    assert after.get("Canon:OwnerName") == OWNER
    assert not [w for w in warnings(out / name) if "maker" in w.lower()]
    assert warnings(out / name) <= warnings(src / name)


def test_every_photoshop_resource_kept_in_a_jpeg(run):
    src, out, _ = run
    before, after = tags(src / "irb.jpg"), tags(out / "irb.jpg")
    assert before["Photoshop:URL"] == "https://example.org/hafen" and before["Photoshop:XResolution"] == 300
    assert before["Photoshop:CopyrightFlag"] is True and before["IPTC:Caption-Abstract"] == "Hafen"
    assert same(before, after, "Photoshop:") == {} and same(before, after, "IPTC:") == {}


def test_utf16_xmp_kept_with_provenance_and_no_false_note(run):
    src, out, records = run
    before, after = tags(src / "utf16.jpg"), tags(out / "utf16.jpg")
    assert before["XMP-dc:Title"] == "Hafen bei Nacht" and before["XMP-dc:Creator"] == "Hans Müller"
    assert after["XMP-dc:Title"] == "Hafen bei Nacht" and after["XMP-dc:Creator"] == "Hans Müller"
    assert after["XMP-colorize:Tool"] == "colorize-cli"
    assert not [n for n in records["utf16.jpg"]["notes"] if "XMP" in n]


def test_provenance_shares_the_packets_rdf_about(run):
    src, out, _ = run
    assert tags(src / "about.jpg")["XMP-rdf:About"] == "uuid:80056b68-1045-fa97-3401-6f4ed84cd53d"
    assert warnings(out / "about.jpg") <= warnings(src / "about.jpg")
    assert tags(out / "about.jpg")["XMP-colorize:Tool"] == "colorize-cli"


def test_other_segments_comments_and_trailer_carried(run):
    src, out, records = run
    before = json.loads(exiftool("-j", "-a", "-G1", "-s", "-Ducky:all", "-Comment", src / "segments.jpg"))[0]
    after = json.loads(exiftool("-j", "-a", "-G1", "-s", "-Ducky:all", "-Comment", out / "segments.jpg"))[0]
    del before["SourceFile"], after["SourceFile"]
    assert before["Ducky:Copyright"] == "Stadtarchiv" and after == before
    comments = exiftool("-a", "-b", "-Comment", "-charset", "Latin", out / "segments.jpg")
    assert b"first comment" in comments and "zweiter Kommentar, Müller".encode("latin-1") in comments
    data = (out / "segments.jpg").read_bytes()
    assert b"\xff\xe9\x00\xd2SCANNER\x00" + bytes(range(200)) in data
    assert data.endswith(b"\xff\xd9" + TRAILER)
    assert records["segments.jpg"]["notes"] == []


def test_planar_16_bit_tiff_stays_16_bit(run):
    src, out, records = run
    assert tags(out / "planar16.tif")["IFD0:BitsPerSample"] == "16 16 16"
    assert not [n for n in records["planar16.tif"]["notes"] if "8 bits" in n]


def test_tiff_white_point_and_primaries_kept(run):
    src, out, _ = run
    before, after = tags(src / "white.tif"), tags(out / "white.tif")
    for tag in ("IFD0:WhitePoint", "IFD0:PrimaryChromaticities"):
        assert after.get(tag) == before[tag], tag
