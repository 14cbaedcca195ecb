"""Metadata fidelity sweep (issue 42): run a corpus through the real `colorize-dir` and judge every
output with exiftool, against its input. Not imported by the tests or the wheel.

    # 1. build the corpus from exiftool's and Pillow's test images (git mirrors) plus files
    #    exiftool writes (each camera JPEG's tags, MakerNotes included, copied onto a larger scan)
    python research/fidelity_sweep.py build /tmp/fid/corpus \
        --exiftool-repo /work/.mirror/exiftool+exiftool/repo --pillow-repo /work/.mirror/python-pillow+Pillow/repo
    # 2. colorize it and count the clean outputs
    python research/fidelity_sweep.py run /tmp/fid/corpus /tmp/fid/out [--json report.json]

A file is clean when its output (every page file of it)
  * adds no `exiftool -validate -warning -a` warning the input did not have,
  * loses or changes no tag (exiftool -j -a -G0:1) beyond the README's list of what must change,
  * keeps the input's ICC profile (an RGB one; a gray one becomes sRGB, as the README says) and
    resolution,
and its MakerNote is "broken" when a maker-notes tag is lost or changed, or exiftool warns about
its offsets. Tags a format change cannot keep count as lost here too; the report lists them with
the file's notes, so whether a note names each is checked by eye.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

# Family-1 groups that describe the file or its pixel encoding, not the photograph.
STRUCTURE_GROUPS = {"System", "File", "Composite", "ExifTool", "JFIF", "BMP", "PCX", "PSD", "JPEG", "RIFF",
                    "Photoshop-Layers", "PNG-pHYs", "Track1", "IFD1", "SubIFD", "SubIFD1"}
# A format's own groups (its chunks and boxes): judged when the output has the input's format, but
# for the tags of FORMAT_STRUCTURE; a format change keeps only their Comment (README).
FORMAT_GROUPS = {"PNG", "Jpeg2000", "GIF", "PNM"}
FORMAT_STRUCTURE = {"ImageWidth", "ImageHeight", "BitDepth", "ColorType", "Compression", "Filter", "Interlace",
                    "Palette", "Transparency", "SignificantBits", "ColorSpace", "NumberOfComponents", "BitsPerComponent",
                    "CompatibleBrands", "MajorBrand", "MinorVersion", "ImageHeaderExtension", "ColorSpecMethod",
                    "ColorSpecPrecision", "ColorSpecApproximation", "Colorspace", "GIFVersion", "HasColorMap",
                    "ColorResolutionDepth", "BitsPerPixel", "PixelAspectRatio", "MaxVal", "ProfileName",
                    "SRGBRendering", "Datacount", "CodestreamVersion"}  # fmt: skip
# (judge --old-judge: the first judge, which took every PNG, JPEG 2000, GIF and PNM tag for structure)
OLD_FORMAT_GROUPS_AS_STRUCTURE = False
# Tags that must change (README "What must change").
CHANGED = {
    "ImageWidth", "ImageHeight", "BitsPerSample", "Compression", "PhotometricInterpretation", "StripOffsets",
    "RowsPerStrip", "StripByteCounts", "SamplesPerPixel", "PlanarConfiguration", "Predictor", "Software",
    "ImageDescription", "Orientation", "ExifImageWidth", "ExifImageHeight", "XMPToolkit", "TileWidth", "TileLength",
    "TileOffsets", "TileByteCounts", "ExtraSamples", "SampleFormat", "FillOrder", "ColorMap", "TransferFunction",
    "YCbCrSubSampling", "YCbCrCoefficients", "ReferenceBlackWhite", "ThumbnailImage", "ThumbnailOffset",
    "ThumbnailLength", "PhotoshopThumbnail", "PreviewImage", "DigitalSourceType", "DerivedFromFilePath",
    "ColorComponents", "EncodingProcess", "ImageSize", "Megapixels", "MinSampleValue", "MaxSampleValue",
    "SubfileType", "OldSubfileType", "NewSubfileType", "YCbCrPositioning", "ComponentsConfiguration",
    "CompressedBitsPerPixel", "InteropIndex", "ColorTransform", "JPEGTables", "OtherImageStart", "OtherImageLength",
    "PreviewImageStart", "PreviewImageLength", "T4Options", "T6Options", "SMinSampleValue", "SMaxSampleValue",
    # a PSD's header (channels, depth, mode) describes its pixels, its layers are not kept (a note
    # says so), and its IPTCDigest follows the IPTC padded into a TIFF tag (README)
    "NumChannels", "ColorMode", "BitDepth", "IPTCDigest",
    # a PNG bKGD names the same colour in the copy's RGB (README)
    "BackgroundColor",
}  # fmt: skip
# XMP properties the provenance replaces (README: "an input DigitalSourceType or DerivedFrom is replaced").
REPLACED_PREFIXES = ("DerivedFrom",)
# Exiftool's warnings about maker notes.
MAKERNOTE_WARNING = re.compile(r"maker ?notes?", re.I)
IMAGE_EXT = re.compile(r"\.(jpe?g|tiff?|png|gif|jp2|j2c|j2k|psd|pcx|bmp|ppm|pgm|pbm|webp|btf)$", re.I)
# Pillow's fuzzing and drawing-result images: no metadata to speak of, or built to crash decoders.
PILLOW_SKIP = re.compile(r"^(imagedraw|crash|timeout|oom|test_|text_|bitmap_font|hopper_bad|fli_overrun|sgi_)", re.I)


def exiftool(*args: str | Path, check: bool = False) -> str:
    done = subprocess.run(["exiftool", *map(str, args)], capture_output=True, text=True, errors="replace")
    if check and done.returncode:
        raise RuntimeError(done.stderr)
    return done.stdout


# ---------------------------------------------------------------------------------------- build


def _git_files(repo: Path, folder: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "ls-tree", "--name-only", "HEAD", folder + "/"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if IMAGE_EXT.search(line)]


def _git_copy(repo: Path, path: str, dest: Path) -> None:
    data = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, check=True).stdout
    dest.write_bytes(data)


def build(corpus: Path, exiftool_repo: Path | None, pillow_repo: Path | None) -> None:
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    corpus.mkdir(parents=True, exist_ok=True)
    if exiftool_repo:
        (corpus / "exiftool").mkdir(exist_ok=True)
        for path in _git_files(exiftool_repo, "t/images"):
            _git_copy(exiftool_repo, path, corpus / "exiftool" / Path(path).name)
    if pillow_repo:
        (corpus / "pillow").mkdir(exist_ok=True)
        for path in _git_files(pillow_repo, "Tests/images"):
            if not PILLOW_SKIP.match(Path(path).name):
                _git_copy(pillow_repo, path, corpus / "pillow" / Path(path).name)
    # exiftool-written: every camera JPEG's tags, MakerNotes included, onto a 320x240 gray scan
    written = corpus / "written"
    written.mkdir(exist_ok=True)
    y, x = np.mgrid[0:240, 0:320]
    gray = ((x + 2 * y) % 256).astype(np.uint8)
    for src in sorted((corpus / "exiftool").glob("*.jpg")) if exiftool_repo else []:
        if "MakerNotes" not in exiftool("-G0", "-s", "-MakerNotes:all", src):
            continue
        for ext in ("jpg", "tif"):
            dest = written / f"{src.stem}.{ext}"
            Image.fromarray(gray).save(dest, **({"quality": 90} if ext == "jpg" else {}))
            exiftool("-q", "-q", "-overwrite_original", "-tagsfromfile", src, "-all:all", "-unsafe", "-icc_profile",
                     "-ThumbnailImage=", "-PreviewImage=", dest)
    # a few exiftool-written archive files: IPTC + Photoshop resources, UTF-16 XMP, a second COM
    for name in ("iptc.jpg", "iptc.tif", "archive.png"):
        Image.fromarray(gray).save(written / name)
    exiftool("-q", "-overwrite_original", "-IPTC:Caption-Abstract=Hafen", "-IPTC:By-line=Hans", "-Photoshop:CopyrightFlag=True",
             "-Photoshop:URL=https://example.org/", "-XResolution=600", "-YResolution=600", "-ResolutionUnit=inches",
             "-XMP-dc:Title=Hafen", written / "iptc.jpg", written / "iptc.tif")
    exiftool("-q", "-overwrite_original", "-PNG:Title=Hafen", "-XMP-dc:Title=Hafen", "-PNG:Gamma=2.2",
             "-PNG:WhitePointX=0.3127", "-PNG:ModifyDate=2020:01:01 00:00:00", written / "archive.png")
    print(f"corpus: {sum(1 for p in corpus.rglob('*') if p.is_file())} files in {corpus}")


# ------------------------------------------------------------------------------------------ run


def _batch(args: list[str], files: list[Path]) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".args", delete=False) as fh:
        fh.write("\n".join(str(f) for f in files) + "\n")
    try:
        return exiftool(*args, "-@", fh.name)
    finally:
        Path(fh.name).unlink()


def read_tags(files: list[Path]) -> dict[Path, dict]:
    out: dict[Path, dict] = {}
    for chunk in range(0, len(files), 200):
        part = files[chunk : chunk + 200]
        text = _batch(["-j", "-a", "-G0:1", "-s", "-charset", "filename=utf8"], part)
        for item in json.loads(text or "[]"):
            out[Path(item["SourceFile"])] = item
    return out


def read_warnings(files: list[Path]) -> dict[Path, list[str]]:
    out: dict[Path, list[str]] = {f: [] for f in files}
    by_name = {str(f): f for f in files}
    for chunk in range(0, len(files), 200):
        text = _batch(["-validate", "-warning", "-error", "-a", "-s", "-charset", "filename=utf8"], files[chunk : chunk + 200])
        current = None
        for line in text.splitlines():
            if line.startswith("======== "):
                current = by_name.get(line[9:].strip())
            elif current is not None and line.startswith(("Warning", "Error")):
                # exiftool's "[minor]" flag on a warning depends on what else it saw: compare the words
                out[current].append(line.split(":", 1)[1].strip().removeprefix("[minor] "))
    return {f: sorted(w) for f, w in out.items()}


def _name(key: str) -> str:
    return key.rsplit(":", 1)[-1]


def _groups(key: str) -> list[str]:
    return key.split(":")[:-1]


def _dropped_by_rule(key: str, same_format: bool = False) -> bool:
    groups = _groups(key)
    if not groups or any(g in STRUCTURE_GROUPS for g in groups) or groups[0] == "ICC_Profile":
        return True
    if any(g in FORMAT_GROUPS for g in groups):
        if OLD_FORMAT_GROUPS_AS_STRUCTURE:
            return True
        if _name(key) in FORMAT_STRUCTURE or (not same_format and _name(key) != "Comment"):
            return True
    if groups[0] == "Photoshop" and _name(key).startswith("Layer"):
        return True
    return _name(key) in CHANGED or (groups[0] == "XMP" and _name(key).startswith(REPLACED_PREFIXES))


def _resolution(tags: dict) -> dict:
    """Every stated resolution (JFIF, IFD0, Photoshop, pHYs...), by group and name."""
    names = ("XResolution", "YResolution", "ResolutionUnit", "PixelsPerUnitX", "PixelsPerUnitY", "PixelUnits")
    return {k: v for k, v in tags.items() if _name(k) in names and "IFD1" not in k and "ICC" not in k}


def _same_resolution(before: dict, after: dict) -> bool:
    if not before:
        return True
    if all(after.get(k) == v for k, v in before.items()):
        return True  # same groups, same values
    # a format change moves the resolution to the output format's own place: compare dpi
    def dpi(res: dict) -> tuple | None:
        x = next((v for k, v in res.items() if _name(k) in ("XResolution",) and "JFIF" not in k), None)
        if x is None:
            x = next((v for k, v in res.items() if _name(k) == "XResolution"), None)
        if x is None and res.get("PNG:PNG-pHYs:PixelUnits") == "meters":  # a PNG's pixels per metre
            x = next((float(v) * 0.0254 for k, v in res.items() if _name(k) == "PixelsPerUnitX"), None)
        try:
            return None if x is None else round(float(x), 1)
        except (TypeError, ValueError):
            return x
    return dpi(before) == dpi(after)


def judge(src: Path, outs: list[Path], tags: dict[Path, dict], warns: dict[Path, list[str]]) -> dict:
    before = tags.get(src, {})
    after = tags.get(outs[0], {})
    same_format = before.get("File:FileType") == after.get("File:FileType")
    lost, changed = [], []
    for key, value in before.items():
        if _dropped_by_rule(key, same_format):
            continue
        if key not in after:
            # a format change may move a tag to another group: the same name and value elsewhere is kept
            if not any(_name(k) == _name(key) and v == value for k, v in after.items()):
                lost.append(key)
        elif after[key] != value:
            changed.append(key)
    new_warnings = sorted({w for o in outs for w in warns.get(o, [])} - set(warns.get(src, [])))
    has_maker = any(k.startswith("MakerNotes:") for k in before)
    maker_broken = has_maker and (
        any(k.startswith("MakerNotes:") for k in lost + changed) or any(MAKERNOTE_WARNING.search(w) for w in new_warnings)
    )
    icc_in = before.get("ICC_Profile:ICC-header:ColorSpaceData")
    icc_ok = True
    if icc_in and "RGB" in str(icc_in):
        icc_ok = all(before.get(k) == after.get(k) for k in ("ICC_Profile:ICC_Profile:ProfileDescription",
                                                          "ICC_Profile:ICC-header:ColorSpaceData"))
    # exiftool 12.57 reads a PCX header's 16-bit dpi fields as single bytes (300 dpi reads 44)
    res_ok = before.get("File:FileType") == "PCX" or _same_resolution(_resolution(before), _resolution(after))
    clean = not lost and not changed and not new_warnings and icc_ok and res_ok
    return {"clean": clean, "lost": lost, "changed": {k: [before[k], after.get(k)] for k in changed},
            "new_warnings": new_warnings, "has_makernote": has_maker, "makernote_broken": maker_broken,
            "icc_kept": icc_ok, "resolution_kept": res_ok}


def run(corpus: Path, out: Path, extra: list[str], report: Path | None, judge_only: bool = False) -> int:
    cmd = ["colorize-dir", str(corpus), "--out", str(out), "--render-size", "64", "--device", "cpu", "--quiet", *extra]
    if not judge_only:  # --judge-only: judge an earlier run's outputs again (e.g. one made by an older version)
        if out.exists():
            shutil.rmtree(out)
        subprocess.run(cmd, check=False)
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    files = [r for r in records if r.get("type") == "file"]
    done = [r for r in files if r["status"] == "done"]
    pairs: dict[Path, list[Path]] = {}
    for r in done:
        first = out / r["output"]
        outs = [first] + sorted(first.parent.glob(f"{first.stem}_page*{first.suffix}"))
        pairs[corpus / r["input"]] = outs[: r.get("pages") or 1] if (r.get("pages") or 1) > 1 else [first]
    everything = list(pairs) + [o for outs in pairs.values() for o in outs]
    tags, warns = read_tags(everything), read_warnings(everything)
    results = {}
    for r in done:
        src = corpus / r["input"]
        results[r["input"]] = {**judge(src, pairs[src], tags, warns), "notes": r.get("notes", []), "output": r["output"]}
    clean = sum(v["clean"] for v in results.values())
    makers = [k for k, v in results.items() if v["has_makernote"]]
    broken = [k for k in makers if results[k]["makernote_broken"]]
    other = Counter((r["status"], r.get("reason") or "") for r in files if r["status"] != "done")
    print(f"command: {' '.join(cmd)}")
    print(f"done {len(done)} of {len(files)}; clean {clean} of {len(done)}; MakerNotes broken {len(broken)} of {len(makers)}")
    for key in sorted(results):
        v = results[key]
        if v["clean"]:
            continue
        why = []
        if v["new_warnings"]:
            why.append("warn=" + "; ".join(v["new_warnings"]))
        if v["lost"]:
            why.append(f"lost={len(v['lost'])}:" + ",".join(v["lost"][:6]))
        if v["changed"]:
            why.append(f"changed={len(v['changed'])}:" + ",".join(list(v["changed"])[:6]))
        if not v["icc_kept"]:
            why.append("ICC")
        if not v["resolution_kept"]:
            why.append("resolution")
        print(f"  NOT CLEAN {key}: {' | '.join(why)}" + (f"  notes={v['notes']}" if v["notes"] else ""))
    for (status, reason), n in sorted(other.items()):
        print(f"  {status} x{n}: {reason}")
    if report:
        report.write_text(json.dumps({"results": results, "not_done": [
            {k: r.get(k) for k in ("input", "status", "reason", "kind")} for r in files if r["status"] != "done"]},
            indent=1, ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("corpus", type=Path)
    b.add_argument("--exiftool-repo", type=Path)
    b.add_argument("--pillow-repo", type=Path)
    r = sub.add_parser("run")
    r.add_argument("corpus", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--json", type=Path)
    r.add_argument("--judge-only", action="store_true", help="judge OUT as it is, without running colorize-dir")
    r.add_argument("--old-judge", action="store_true", help="the first judge: no PNG/JPEG 2000/GIF/PNM tag is judged")
    r.add_argument("extra", nargs="*", help="more colorize-dir options, after --")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        build(args.corpus, args.exiftool_repo, args.pillow_repo)
        return 0
    global OLD_FORMAT_GROUPS_AS_STRUCTURE
    OLD_FORMAT_GROUPS_AS_STRUCTURE = args.old_judge
    return run(args.corpus, args.out, args.extra, args.json, args.judge_only)


if __name__ == "__main__":
    sys.exit(main())
