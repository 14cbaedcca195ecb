"""metadata: what a scan says about itself survives into the colorized copy (EXIF, ICC, DPI,
XMP, IPTC, text), corrected where the pixels changed, and never at the cost of the image."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import piexif
import pytest
from PIL import Image, ImageCms, IptcImagePlugin, PngImagePlugin

from colorize_cli import __version__
from colorize_cli.io.scanfile import read_scan, write_image
from colorize_cli.io.meta.carry import carry
from colorize_cli.io.meta.source import Metadata

MARK = f"[colorized by colorize-cli {__version__}, model test-net]"
CAPTION = b"Harbour at dawn, 1931"
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'tiff:Orientation="6"><dc:source>Box 12, folder 3</dc:source></rdf:Description></rdf:RDF></x:xmpmeta>'
)
IIM = b"\x1c\x02\x78\x00\x0cHarbour 1931" + b"\x1c\x02\x74\x00\x0b(c) Archive"


def _thumbnail() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 6), 90).save(buf, "JPEG")
    return buf.getvalue()


def full_exif(orientation: int = 6) -> bytes:
    return piexif.dump(
        {
            "0th": {
                270: CAPTION,
                271: b"Epson",
                272: b"Perfection V850",
                274: orientation,
                306: b"2019:03:04 10:11:12",
                315: b"J. Doe",
                33432: b"City Archive",
                40091: "Harbour".encode("utf-16-le") + b"\x00\x00",  # XPTitle, sorts after the IFD pointers
            },
            "Exif": {
                36867: b"1931:06:01 05:30:00",
                36868: b"2019:03:04 10:11:12",
                33434: (1, 125),
                34855: 200,
                37510: b"ASCII\x00\x00\x00scanned from glass plate",
                41729: b"\x01",  # SceneType, sorts after the Interop pointer
            },
            "GPS": {1: b"N", 2: ((53, 1), (33, 1), (1234, 100)), 3: b"E", 4: ((9, 1), (59, 1), (0, 1))},
            "Interop": {1: b"R98"},
            "1st": {513: 1, 514: 1, 256: 8, 257: 6},
            "thumbnail": _thumbnail(),
        }
    )


def stored_scan() -> np.ndarray:
    """48 wide, 32 high as stored, with a white 8x8 marker in the stored top-left corner."""
    g = np.full((32, 48), 70, np.uint8)
    g[:8, :8] = 255
    return g


def exif_of(path: Path) -> dict:
    """piexif view of a written file's EXIF, wherever the format keeps it."""
    meta = read_scan(path).meta
    assert meta.exif, f"{path.name} has no EXIF"
    return piexif.load(meta.exif)


def colourize(gray: np.ndarray) -> np.ndarray:
    g = gray.astype(np.float32)
    return np.clip(np.dstack([g, g * 0.8, g * 0.55]), 0, 255).astype(np.uint8)


def check_carried_exif(d: dict, tiff: bool = False) -> None:
    """Every input tag with its value; a TIFF holds no JPEG-only EXIF tags (exiftool -validate)."""
    zeroth, ex, gps = d["0th"], d["Exif"], d["GPS"]
    assert zeroth[274] == 1
    assert zeroth[270] == CAPTION + b" " + MARK.encode()
    assert zeroth[305] == f"colorize-cli {__version__}".encode()
    for tag, value in [(271, b"Epson"), (272, b"Perfection V850"), (306, b"2019:03:04 10:11:12"),
                       (315, b"J. Doe"), (33432, b"City Archive")]:
        assert zeroth[tag] == value, tag
    assert bytes(zeroth[40091]) == "Harbour".encode("utf-16-le") + b"\x00\x00"
    assert ex[36867] == b"1931:06:01 05:30:00" and ex[36868] == b"2019:03:04 10:11:12"
    assert tuple(ex[33434]) == (1, 125) and ex[34855] == 200
    assert ex[37510] == b"ASCII\x00\x00\x00scanned from glass plate" and ex[41729] == b"\x01"
    if tiff:
        assert 40962 not in ex and 40963 not in ex and not d["Interop"]
    else:
        assert (ex[40962], ex[40963]) == (32, 48)
        assert d["Interop"] == {1: b"R98"}
    assert gps[1] == b"N" and tuple(map(tuple, gps[2])) == ((53, 1), (33, 1), (1234, 100)) and gps[3] == b"E"
    assert d["thumbnail"] is None and not d["1st"]


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("TIFF", "tif"), ("PNG", "png"), ("WEBP", "webp")])
def test_full_exif_round_trip(tmp_path, fmt, ext):
    src = tmp_path / "scan.jpg"
    Image.fromarray(stored_scan()).save(src, quality=95, exif=full_exif(6), dpi=(600, 600))
    scan = read_scan(src)
    assert scan.size == (32, 48) and scan.meta.orientation == 6
    assert scan.gray[:8, -8:].min() > 200 and scan.gray[:8, :8].max() < 120  # turned clockwise

    out = tmp_path / f"out.{ext}"
    notes = write_image(out, colourize(scan.gray), None, fmt, 95, scan.meta, model_name="test-net")
    tiff = fmt == "TIFF"
    expected = ["EXIF tags TIFF does not hold dropped: InteroperabilityIndex"]
    assert [n for n in notes if "EXIF" in n] == (expected if tiff else [])
    check_carried_exif(exif_of(out), tiff)
    # once more with this output as the input: the EXIF survives a second pass intact
    again = tmp_path / "again.jpg"
    second = read_scan(out)
    write_image(again, colourize(second.gray), None, "JPEG", 95, second.meta, model_name="test-net")
    d = exif_of(again)
    if tiff:  # gone from the TIFF, so not in its copies; PixelX/YDimension are JPEG's again
        assert (d["Exif"][40962], d["Exif"][40963]) == (32, 48) and not d["Interop"]
        d["Interop"] = {1: b"R98"}
    check_carried_exif(d)

    with Image.open(out) as im:
        assert im.size == (32, 48)
        px = np.asarray(im.convert("RGB")).astype(int)
    corner = px[:8, -8:].reshape(-1, 3).mean(axis=0)
    assert corner[0] > 200 and corner[0] - corner[2] > 60  # the marker, still coloured, top right
    assert px[:8, :8].mean() < 120


def test_exif_ifds_written_sorted(tmp_path):
    Image.fromarray(stored_scan()).save(tmp_path / "s.jpg", exif=full_exif(1))
    carried = carry(read_scan(tmp_path / "s.jpg").meta, "JPEG", 48, 32, "m")
    tiff = carried.exif[6:]
    endian = ">" if tiff[:2] == b"MM" else "<"

    def tags_at(offset: int) -> list[int]:
        (n,) = struct.unpack_from(endian + "H", tiff, offset)
        return [struct.unpack_from(endian + "H", tiff, offset + 2 + 12 * i)[0] for i in range(n)]

    zeroth = tags_at(struct.unpack_from(endian + "I", tiff, 4)[0])
    assert zeroth == sorted(zeroth) and 40091 in zeroth and 34665 in zeroth
    exif_ifd = piexif.load(carried.exif)["0th"][34665]
    sub = tags_at(exif_ifd)
    assert sub == sorted(sub) and 41729 in sub and 40965 in sub


def test_tiff_gray_icc_and_dpi(tmp_path, icc_profile):
    src = tmp_path / "scan.tif"
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))
    Image.fromarray(gray).save(src, dpi=(1200, 1200), icc_profile=icc_profile("Gray"))
    scan = read_scan(src)
    assert scan.meta.icc_color_space == "GRAY" and scan.meta.dpi == (1200.0, 1200.0)
    for fmt, ext in [("TIFF", "tif"), ("PNG", "png"), ("JPEG", "jpg")]:
        out = tmp_path / f"out.{ext}"
        write_image(out, colourize(scan.gray), None, fmt, 90, scan.meta, model_name="m")
        with Image.open(out) as im:
            icc = im.info.get("icc_profile")
            assert icc and icc[16:20] == b"RGB ", fmt
            assert "srgb" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).lower()
            assert tuple(round(v) for v in im.info["dpi"]) == (1200, 1200), fmt
    assert read_scan(tmp_path / "out.tif").meta.dpi == (1200.0, 1200.0)


def test_rgb_input_profile_is_kept(tmp_path, icc_profile):
    """An Adobe RGB scan's output is in Adobe RGB, tagged with the input's own profile; its
    pixels are the sRGB result converted into that space (a neutral gray stays neutral)."""
    adobe = icc_profile("compatibleWithAdobeRGB1998")
    src = tmp_path / "toned.jpg"
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))
    Image.fromarray(np.dstack([gray, gray, gray])).save(src, quality=95, icc_profile=adobe)
    scan = read_scan(src)
    assert scan.meta.icc_color_space == "RGB"
    rgb = colourize(scan.gray)
    for fmt, ext in [("JPEG", "jpg"), ("PNG", "png"), ("TIFF", "tif")]:
        out = tmp_path / f"out.{ext}"
        write_image(out, rgb, None, fmt, 95, scan.meta, model_name="m")
        with Image.open(out) as im:
            assert im.info.get("icc_profile") == adobe, fmt
            written = np.asarray(im.convert("RGB"), dtype=np.int16)
        expected = ImageCms.profileToProfile(Image.fromarray(rgb), ImageCms.createProfile("sRGB"),
                                             ImageCms.ImageCmsProfile(io.BytesIO(adobe)), outputMode="RGB")
        tolerance = 6 if fmt == "JPEG" else 0
        assert np.abs(written - np.asarray(expected, dtype=np.int16)).max() <= tolerance, fmt
    neutral = np.dstack([gray, gray, gray])
    write_image(tmp_path / "n.png", neutral, None, "PNG", 95, scan.meta, model_name="m")
    kept = np.asarray(Image.open(tmp_path / "n.png").convert("RGB"), dtype=np.int16)
    assert np.abs(kept[..., 0] - kept[..., 1]).max() <= 2 and np.abs(kept[..., 1] - kept[..., 2]).max() <= 2
    notes = write_image(tmp_path / "deep.png", rgb.astype(np.uint16) * 257, None, "PNG", 95, scan.meta, model_name="m")
    assert any("not kept for 16-bit output" in n for n in notes)
    with Image.open(tmp_path / "deep.png") as im:
        assert b"sRGB" in im.info["icc_profile"] or "srgb" in ImageCms.getProfileDescription(
            ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))).lower()


def test_png_text_chunks(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "Harbour")
    info.add_text("Description", "long caption " * 20, zip=True)
    info.add_itxt("Author", "Zoë Müller 港")
    src = tmp_path / "scan.png"
    Image.new("L", (8, 8), 100).save(src, pnginfo=info)
    scan = read_scan(src)
    expect = {"Title": "Harbour", "Description": "long caption " * 20, "Author": "Zoë Müller 港"}
    assert scan.meta.text == expect
    write_image(tmp_path / "out.png", colourize(scan.gray), None, "PNG", 90, scan.meta)
    with Image.open(tmp_path / "out.png") as im:
        assert {k: v for k, v in im.text.items() if k != "XML:com.adobe.xmp"} == expect
        assert im.text["Author"].lang == "" and b"compositeWithTrainedAlgorithmicMedia" in im.info["xmp"]
    notes = write_image(tmp_path / "out.jpg", colourize(scan.gray), None, "JPEG", 90, scan.meta)
    assert "text chunks dropped: Author, Description, Title (JPEG has no text chunks)" in notes


def test_itxt_language_tags_kept(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("Title", "Hafen bei Nacht", lang="de", tkey="Titel")
    info.add_text("Source", "Glasplatte Nr. 12")  # Latin-1 text stays a tEXt chunk
    Image.new("L", (8, 8), 100).save(tmp_path / "t.png", pnginfo=info)
    scan = read_scan(tmp_path / "t.png")
    write_image(tmp_path / "o.png", colourize(scan.gray), None, "PNG", 90, scan.meta)
    with Image.open(tmp_path / "o.png") as im:
        title = im.text["Title"]
        assert (title, title.lang, title.tkey) == ("Hafen bei Nacht", "de", "Titel")
    chunks = (tmp_path / "o.png").read_bytes()
    assert b"tEXtSource\x00Glasplatte Nr. 12" in chunks and b"iTXtTitle\x00\x00\x00de\x00Titel\x00" in chunks


def _jpeg_with_segment(marker: int, payload: bytes, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(stored_scan()).save(buf, "JPEG", **save)
    data = buf.getvalue()
    return data[:2] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def test_corrupt_exif_never_fails_the_image(tmp_path):
    src = tmp_path / "bad.jpg"
    src.write_bytes(_jpeg_with_segment(0xE1, b"Exif\x00\x00\x13\x37 definitely not a TIFF structure"))
    scan = read_scan(src)
    assert scan.size == (48, 32)
    for fmt, ext in [("JPEG", "jpg"), ("PNG", "png"), ("TIFF", "tif")]:
        out = tmp_path / f"out.{ext}"
        notes = write_image(out, colourize(scan.gray), None, fmt, 90, scan.meta, model_name="test-net")
        assert any(n.startswith("EXIF dropped: corrupt (") for n in notes), notes
        d = exif_of(out)  # a fresh, valid EXIF with what colorize-cli knows
        assert d["0th"][270] == MARK.encode() and d["0th"][274] == 1
        assert d["Exif"].get(40962) == (None if fmt == "TIFF" else 48)  # TIFF says its size itself


def test_a_wrongly_typed_tag_is_carried_as_stored():
    """The input's value, type and all: the copy says what the original said (issue 12)."""
    exif = Image.Exif()
    exif[0x010F] = "Epson"
    exif.get_ifd(0x8769)[0x9003] = 12345  # DateTimeOriginal should be text
    carried = carry(Metadata(exif=exif.tobytes()), "JPEG", 4, 4, "m")
    assert carried.notes == []
    d = piexif.load(carried.exif)
    assert d["0th"][271] == b"Epson" and d["Exif"][36867] == 12345


def test_marker_is_replaced_not_stacked():
    d = {"0th": {270: CAPTION + b" [colorized by colorize-cli 0.0.1, model old]"}}
    carried = carry(Metadata(exif=piexif.dump(d)), "PNG", 4, 4, "test-net")
    assert piexif.load(carried.exif)["0th"][270] == CAPTION + b" " + MARK.encode()


def test_xmp_carried_with_orientation_reset(tmp_path):
    src = tmp_path / "x.jpg"
    Image.fromarray(stored_scan()).save(src, exif=piexif.dump({"0th": {274: 6}}), xmp=XMP)
    scan = read_scan(src)
    assert scan.meta.xmp == XMP
    for fmt, ext in [("JPEG", "jpg"), ("PNG", "png"), ("TIFF", "tif"), ("WEBP", "webp")]:
        write_image(tmp_path / f"o.{ext}", colourize(scan.gray), None, fmt, 90, scan.meta)
        xmp = read_scan(tmp_path / f"o.{ext}").meta.xmp
        kept, _, added = XMP.replace(b'tiff:Orientation="6"', b'tiff:Orientation="1"').partition(b"</rdf:RDF>")
        assert xmp.startswith(kept) and xmp.endswith(b"</rdf:RDF>" + added), fmt  # the input's own, untouched
        assert b'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/' in xmp, fmt


def test_iptc_carried_to_jpeg_and_tiff(tmp_path):
    irb = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(IIM)) + IIM + b"\x00" * (len(IIM) % 2)
    src = tmp_path / "i.jpg"
    src.write_bytes(_jpeg_with_segment(0xED, b"Photoshop 3.0\x00" + irb))
    scan = read_scan(src)
    assert scan.meta.iptc == IIM
    write_image(tmp_path / "o.jpg", colourize(scan.gray), None, "JPEG", 90, scan.meta)
    with Image.open(tmp_path / "o.jpg") as im:
        iptc = IptcImagePlugin.getiptcinfo(im)
    assert iptc[(2, 120)] == b"Harbour 1931" and iptc[(2, 116)] == b"(c) Archive"
    write_image(tmp_path / "o.tif", colourize(scan.gray), None, "TIFF", 90, scan.meta)
    with Image.open(tmp_path / "o.tif") as im:
        assert IIM in bytes(im.tag_v2[34377])  # Photoshop image resources, as Photoshop writes them
    assert read_scan(tmp_path / "o.tif").meta.iptc == IIM
    notes = write_image(tmp_path / "o.png", colourize(scan.gray), None, "PNG", 90, scan.meta)
    assert "IPTC dropped: PNG has no IPTC block" in notes


def test_jpeg_comment_carried(tmp_path):
    Image.fromarray(stored_scan()).save(tmp_path / "c.jpg", comment=b"scanned by volunteer 7")
    scan = read_scan(tmp_path / "c.jpg")
    write_image(tmp_path / "o.jpg", colourize(scan.gray), None, "JPEG", 90, scan.meta)
    write_image(tmp_path / "o.png", colourize(scan.gray), None, "PNG", 90, scan.meta)
    with Image.open(tmp_path / "o.jpg") as a, Image.open(tmp_path / "o.png") as b:
        assert a.info["comment"] == b"scanned by volunteer 7" and b.text["Comment"] == "scanned by volunteer 7"


def test_latin1_jpeg_comment_kept_byte_for_byte(tmp_path):
    Image.fromarray(stored_scan()).save(tmp_path / "c.jpg", comment="Glasplatte, Müller".encode("latin-1"))
    scan = read_scan(tmp_path / "c.jpg")
    write_image(tmp_path / "o.jpg", colourize(scan.gray), None, "JPEG", 90, scan.meta)
    with Image.open(tmp_path / "o.jpg") as im:
        assert im.info["comment"] == "Glasplatte, Müller".encode("latin-1")


def test_oversized_maker_note_leaves_jpeg_first(tmp_path):
    exif = piexif.dump({"0th": {271: b"Epson"}, "Exif": {37500: bytes(70_000)}})
    meta = Metadata(exif=exif)
    notes = write_image(tmp_path / "o.jpg", colourize(stored_scan()), None, "JPEG", 90, meta)
    assert "EXIF MakerNote dropped: EXIF too long for a JPEG segment" in notes
    assert exif_of(tmp_path / "o.jpg")["0th"][271] == b"Epson"
    notes = write_image(tmp_path / "o.png", colourize(stored_scan()), None, "PNG", 90, meta)
    assert notes == [] and len(exif_of(tmp_path / "o.png")["Exif"][37500]) == 70_000


def test_bmp_says_what_it_cannot_hold(tmp_path):
    notes = write_image(tmp_path / "o.bmp", colourize(stored_scan()), None, "BMP", 90, Metadata(exif=full_exif()))
    assert notes == ["metadata not written: BMP cannot hold EXIF, ICC, provenance XMP"]


def test_png_dpi_snaps_to_integer(tmp_path):
    Image.new("L", (4, 4)).save(tmp_path / "d.png", dpi=(300, 300))
    with Image.open(tmp_path / "d.png") as im:
        assert im.info["dpi"] != (300, 300)  # pixels per metre do not hold 300 dpi exactly
    assert read_scan(tmp_path / "d.png").meta.dpi == (300.0, 300.0)


def test_provenance_is_added_once_and_the_input_xmp_kept():
    from colorize_cli.io.meta.provenance import DIGITAL_SOURCE_TYPE, Provenance, merge

    origin = Provenance("chromanet-v1", "ab" * 32, "Hafen 1931.tif", "cd" * 32)
    source = XMP.replace(b'tiff:Orientation="6"', b'tiff:Orientation="6" Iptc4xmpExt:DigitalSourceType="x/negativeFilm"')
    notes: list[str] = []
    once = merge(source, origin, notes)
    twice = merge(once, Provenance("other", "ef" * 32, "copy.tif", "01" * 32), notes)
    for xmp in (once, twice):
        assert xmp.count(b"DigitalSourceType") == 1 and DIGITAL_SOURCE_TYPE.encode() in xmp
        assert xmp.count(b"<xmpMM:DerivedFrom") == 1 and b"<dc:source>Box 12, folder 3</dc:source>" in xmp
    assert b"Hafen 1931.tif" in once and b"copy.tif" in twice and b"Hafen 1931.tif" not in twice
    assert notes == []
    broken: list[str] = []
    assert DIGITAL_SOURCE_TYPE.encode() in merge(b"<x:xmpmeta><rdf:RDF>", origin, broken)
    assert broken == ["XMP replaced: the input's XMP is not well-formed, only the provenance is written"]
