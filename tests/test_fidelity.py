"""Archive fidelity, judged by exiftool (Debian: libimage-exiftool-perl), the reader archivists
use: a corpus whose metadata exiftool itself wrote goes through the real `colorize-dir`, and
exiftool reads the results back. Every output must validate with no warning its input did not
have, keep every input tag (text byte for byte), invent no resolution, keep every page, and
declare that a trained model colorized it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from colorize_cli.cli.app import app
from colorize_cli.io.meta.provenance import DIGITAL_SOURCE_TYPE

runner = CliRunner()

ARTIST, COPYRIGHT, CAPTION = "Hans Müller", "© Stadtarchiv", "Blick über den Hafen"
IPTC_CAPTION = "Hafen bei Nacht, 1931"
# Groups that describe the file or its pixel encoding, not the photograph.
STRUCTURE_GROUPS = {"System", "File", "Composite", "ExifTool", "JFIF", "Jpeg2000", "PNG", "GIF", "PNM"}
# Tags that must change, as documented in carry.py and the README.
CHANGED = {
    "ImageWidth", "ImageHeight", "BitsPerSample", "Compression", "PhotometricInterpretation", "StripOffsets",
    "RowsPerStrip", "StripByteCounts", "SamplesPerPixel", "PlanarConfiguration", "Predictor", "Software",
    "ImageDescription", "Orientation", "ExifImageWidth", "ExifImageHeight", "XMPToolkit",
}  # fmt: skip


def exiftool(*args: str | Path) -> bytes:
    assert shutil.which("exiftool"), "exiftool missing: apt-get install libimage-exiftool-perl"
    return subprocess.run(["exiftool", *map(str, args)], capture_output=True, check=True, timeout=60).stdout


def tags(path: Path) -> dict[str, object]:
    return json.loads(exiftool("-j", "-a", "-G1", "-s", path))[0]


def raw(path: Path, tag: str) -> bytes:
    """A tag's value exactly as stored (exiftool -b)."""
    return exiftool("-b", f"-{tag}", path)


def warnings(path: Path) -> set[str]:
    lines = exiftool("-validate", "-warning", "-a", "-s", path).decode("utf-8").splitlines()
    return {line.split(":", 1)[1].strip() for line in lines if line.startswith("Warning")}


def ramp(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 3 + y * 2) % 256).astype(np.uint8)


def build_corpus(root: Path) -> None:
    """The archive's files, their metadata written by exiftool."""
    root.mkdir()
    g = ramp()
    for name in ("iptc.tif", "nores.tif", "latin1.tif"):
        Image.fromarray(g).save(root / name)
    Image.fromarray(g).save(root / "pages.tif", save_all=True, append_images=[Image.fromarray(255 - g[:40])])
    Image.fromarray(g).save(root / "master.jp2", irreversible=False)
    Image.fromarray(g).save(root / "sane.pgm")
    Image.fromarray(g).save(root / "anim.gif", save_all=True, append_images=[Image.fromarray(255 - g)])
    Image.fromarray(g).save(root / "scanner.jpg", quality=95)
    (root / "letter.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n")
    ow = ("-q", "-overwrite_original")
    exiftool(*ow, "-charset", "iptc=UTF8", "-IPTC:CodedCharacterSet=UTF8", f"-IPTC:Caption-Abstract={IPTC_CAPTION}",
             f"-IPTC:By-line={ARTIST}", "-IPTC:Keywords=Hafen", f"-EXIF:Artist={ARTIST}", f"-EXIF:Copyright={COPYRIGHT}",
             f"-EXIF:ImageDescription={CAPTION}", "-XResolution=600", "-YResolution=600", "-ResolutionUnit=inches",
             "-Photoshop:CopyrightFlag=True", "-Photoshop:URL=https://example.org/hafen", root / "iptc.tif")
    exiftool(*ow, "-charset", "exif=Latin", f"-EXIF:Artist={ARTIST}", f"-EXIF:Copyright={COPYRIGHT}", root / "latin1.tif")
    exiftool(*ow, "-XResolution=", "-YResolution=", "-ResolutionUnit=", "-EXIF:Make=Nikon", root / "nores.tif")
    exiftool(*ow, "-IFD0:PageName=front", "-IFD1:PageName=back", "-IFD0:PageNumber=0 2", "-IFD1:PageNumber=1 2",
             root / "pages.tif")
    exiftool(*ow, "-XMP-dc:Title=Hafen", f"-EXIF:Artist={ARTIST}", root / "master.jp2")
    exiftool(*ow, "-Make=Epson", "-Model=Perfection V850", "-DateTimeOriginal=1931:06:01 05:30:00",
             "-GPSLatitude=53.55", "-GPSLatitudeRef=N", "-GPSLongitude=9.99", "-GPSLongitudeRef=E",
             "-InteropIndex=R98", "-InteropVersion=0100", "-XResolution=600", "-YResolution=600",
             "-ResolutionUnit=inches", "-XMP-dc:Creator=Hans Müller", root / "scanner.jpg")


OUTPUTS = {  # input -> output, as the README's format table says
    "iptc.tif": "iptc.tif", "nores.tif": "nores.tif", "latin1.tif": "latin1.tif", "pages.tif": "pages.tif",
    "master.jp2": "master.jp2", "sane.pgm": "sane.png", "anim.gif": "anim.png", "scanner.jpg": "scanner.jpg",
}  # fmt: skip


def colorize_dir(src: Path, out: Path, weights: Path, *extra: str):
    return runner.invoke(app, ["dir", str(src), "--out", str(out), "--weights", str(weights), "--render-size", "64",
                               "--device", "cpu", "--quiet", *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory, random_weights):
    """(input folder, output folder, manifest records by input) of one colorize-dir run."""
    root = tmp_path_factory.mktemp("fidelity")
    src, out = root / "archive", root / "color"
    build_corpus(src)
    result = colorize_dir(src, out, random_weights)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return src, out, {r["input"]: r for r in records if r.get("type") == "file"}


def test_every_file_done_and_pdf_skipped_with_a_true_reason(run):
    src, out, records = run
    assert {k: (r["status"], r["output"]) for k, r in records.items() if k != "letter.pdf"} == {
        k: ("done", v) for k, v in OUTPUTS.items()
    }
    assert records["letter.pdf"]["status"] == "skipped"
    assert records["letter.pdf"]["reason"] == "PDF documents are not colorized"


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_no_new_validation_warning(run, name):
    src, out, _ = run
    assert warnings(out / OUTPUTS[name]) <= warnings(src / name)


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_every_input_tag_kept_with_its_value(run, name):
    src, out, _ = run
    before, after = tags(src / name), tags(out / OUTPUTS[name])
    lost = {
        key: (value, after.get(key))
        for key, value in before.items()
        if ":" in key and key.split(":")[0] not in STRUCTURE_GROUPS and not key.startswith("ICC")
        and key.split(":")[-1] not in CHANGED and after.get(key) != value
    }
    assert lost == {}
    description = before.get("IFD0:ImageDescription")
    if description:
        assert str(after["IFD0:ImageDescription"]).startswith(f"{description} [colorized by colorize-cli ")


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_every_output_declares_it_was_colorized_by_a_trained_model(run, name):
    src, out, records = run
    got = tags(out / OUTPUTS[name])
    assert got["XMP-iptcExt:DigitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert got["XMP-xmpMM:DerivedFromFilePath"] == name
    assert got["XMP-colorize:SourceSHA256"] == hashlib.sha256((src / name).read_bytes()).hexdigest()
    assert got["XMP-colorize:Model"] == "random-chromanet" and len(str(got["XMP-colorize:ModelSHA256"])) == 64
    assert got["XMP-colorize:Tool"] == "colorize-cli"


def test_text_kept_byte_for_byte_utf8_and_latin1(run):
    src, out, _ = run
    for tag, text in (("IFD0:Artist", ARTIST), ("IFD0:Copyright", COPYRIGHT)):
        assert raw(out / "iptc.tif", tag) == text.encode("utf-8") == raw(src / "iptc.tif", tag)
        assert raw(out / "latin1.tif", tag) == text.encode("latin-1") == raw(src / "latin1.tif", tag)
    assert raw(out / "iptc.tif", "IFD0:ImageDescription").startswith(CAPTION.encode("utf-8") + b" [colorized by ")


def test_iptc_and_photoshop_resources_kept(run):
    src, out, _ = run
    got = tags(out / "iptc.tif")
    assert got["IPTC:Caption-Abstract"] == IPTC_CAPTION and got["IPTC:By-line"] == ARTIST
    assert got["IPTC:Keywords"] == "Hafen" and got["IFD0:XResolution"] == 600
    assert got["Photoshop:CopyrightFlag"] is True and got["Photoshop:URL"] == "https://example.org/hafen"


def test_no_resolution_invented(run):
    src, out, _ = run
    for name in ("nores.tif", "sane.pgm", "anim.gif"):
        found = [k for k in tags(out / OUTPUTS[name]) if k.split(":")[-1] in
                 ("XResolution", "YResolution", "ResolutionUnit", "PixelsPerUnitX", "PixelUnits")]
        assert found == [], name
    assert tags(out / "nores.tif")["IFD0:Make"] == "Nikon"


def chroma(rgb: np.ndarray) -> float:
    rgb = rgb.astype(np.float64)
    return float(np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).mean())


def test_both_pages_colorized_in_order_with_their_own_tags(run):
    src, out, records = run
    assert records["pages.tif"]["pages"] == 2
    with tifffile.TiffFile(out / "pages.tif") as tif:
        assert len(tif.pages) == 2
        first, second = (p.asarray() for p in tif.pages)
        names = [p.tags["PageName"].value for p in tif.pages]
    assert first.shape == (48, 64, 3) and second.shape == (40, 64, 3) and names == ["front", "back"]
    assert chroma(first) > 1.0 and chroma(second) > 1.0
    assert np.corrcoef(second.mean(axis=-1).ravel(), 255.0 - ramp()[:40].ravel())[0, 1] > 0.95  # page 2 is page 2
    assert tags(out / "pages.tif")["IFD1:PageNumber"] == "1 2"


def test_archive_formats_read_and_written_faithfully(run):
    src, out, records = run
    data = (out / "master.jp2").read_bytes()
    cod = data.index(b"\xff\x52")  # the codestream's coding style: byte 13 is the wavelet, 1 = reversible 5/3
    assert data[cod + 13] == 1, "lossless JPEG 2000 must stay lossless"
    for name in ("master.jp2", "sane.pgm", "anim.gif"):
        with Image.open(out / OUTPUTS[name]) as im:
            assert im.size == (64, 48) and chroma(np.asarray(im.convert("RGB"))) > 1.0, name
    assert records["anim.gif"]["notes"] == ["2 frames (GIF): only the first is colorized"]


def test_pages_to_a_single_image_format_get_one_file_each(tmp_path, run, random_weights):
    src, _, _ = run
    out = tmp_path / "png"
    result = colorize_dir(src, out, random_weights, "--include", "pages.tif", "--format", "png")
    assert result.exit_code == 0, result.output
    record = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()][-2]
    assert record["output"] == "pages.png" and record["pages"] == 2
    assert record["notes"] == ["2 pages written one file each (PNG holds one image): pages.png, pages_page2.png"]
    with Image.open(out / "pages_page2.png") as im:
        assert im.size == (64, 40) and chroma(np.asarray(im)) > 1.0
    assert tags(out / "pages_page2.png")["XMP-iptcExt:DigitalSourceType"] == DIGITAL_SOURCE_TYPE


def test_a_deleted_page_file_is_redone_and_a_killed_runs_page_temp_is_swept(tmp_path, run, random_weights):
    """Resume checks every page file, not only page 1's, and the stale-temp sweep finds the
    temps of `_pageN` files too."""
    src, _, _ = run
    out = tmp_path / "png"
    assert colorize_dir(src, out, random_weights, "--include", "pages.tif", "--format", "png").exit_code == 0
    first = (out / "pages.png").read_bytes()
    (out / "pages_page2.png").unlink()
    stale = out / ".pages_page2.png.dead0001.tmp"  # as a run killed mid-write leaves it (owner dead)
    stale.write_bytes(b"half a page")
    plan = json.loads(colorize_dir(src, out, random_weights, "--include", "pages.tif", "--format", "png", "--dry-run", "--json").output)
    assert plan["todo"] == 1 and {"action": "do", "input": "pages.tif", "why": "output missing"} in plan["files"]
    again = colorize_dir(src, out, random_weights, "--include", "pages.tif", "--format", "png", "--json")
    assert again.exit_code == 0, again.output
    summary = json.loads(again.output)
    assert summary["counts"]["done"] == 1 and summary["stale_temps_removed"] == 1
    assert not stale.exists() and (out / "pages_page2.png").is_file()
    assert (out / "pages.png").read_bytes() == first  # the same result again
    third = colorize_dir(src, out, random_weights, "--include", "pages.tif", "--format", "png", "--json")
    assert json.loads(third.output)["counts"]["done"] == 0  # whole again: nothing to redo


def test_a_failing_page_fails_the_file_naming_the_page(tmp_path, random_weights):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    g = ramp()
    Image.fromarray(g).save(src / "two.tif", save_all=True, append_images=[Image.fromarray(g)], compression="tiff_adobe_deflate")
    with tifffile.TiffFile(src / "two.tif") as tif:
        at, size = tif.pages[1].dataoffsets[0], tif.pages[1].databytecounts[0]
    data = bytearray((src / "two.tif").read_bytes())
    data[at : at + size] = b"\xff" * size  # page 2's pixels: not a deflate stream
    (src / "two.tif").write_bytes(bytes(data))
    result = colorize_dir(src, out, random_weights)
    assert result.exit_code == 1
    record = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()][-2]
    assert record["status"] == "failed" and record["reason"].startswith("page 2 of 2: ")
    assert not (out / "two.tif").exists()


def test_bit_depth_16_with_an_8_bit_format_is_a_usage_error(tmp_path, random_weights):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(ramp()).save(src / "a.png")
    for fmt in ("jpeg", "webp"):
        result = colorize_dir(src, tmp_path / "out", random_weights, "--format", fmt, "--bit-depth", "16")
        assert result.exit_code == 2 and "--bit-depth 16 needs PNG, TIFF or JPEG 2000 output" in result.output, fmt
    assert not (tmp_path / "out").exists()
