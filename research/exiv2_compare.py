"""Issue 42: would python-exiv2 (libexiv2) carry metadata better than our own writer? For every
JPEG and TIFF input of a colorize-dir sweep (research/fidelity_sweep.py), copy the input's EXIF,
IPTC and XMP with exiv2 onto colorize-dir's own output pixels stripped of metadata, and judge
both with the sweep's exiftool criteria. Not imported by the tests or the wheel.

    pip install exiv2
    python research/exiv2_compare.py /tmp/fid/corpus /tmp/fid/out /tmp/fid/exiv2
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import exiv2
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from fidelity_sweep import judge, read_tags, read_warnings  # noqa: E402


def exiv2_copy(src: Path, pixels_from: Path, dest: Path) -> None:
    with Image.open(pixels_from) as im:
        im.load()
        kw = {"quality": 92} if dest.suffix.lower() in (".jpg", ".jpeg") else {"compression": "tiff_lzw"}
        im.convert("RGB").save(dest, **kw)
    source = exiv2.ImageFactory.open(str(src))
    source.readMetadata()
    target = exiv2.ImageFactory.open(str(dest))
    target.readMetadata()
    target.setExifData(source.exifData())
    target.setIptcData(source.iptcData())
    target.setXmpData(source.xmpData())
    target.setIccProfile(source.iccProfile()) if source.iccProfileDefined() else None
    target.writeMetadata()


def main(corpus: Path, out: Path, work: Path) -> int:
    shutil.rmtree(work, ignore_errors=True)
    records = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    done = [r for r in records if r.get("type") == "file" and r["status"] == "done"
            and Path(r["input"]).suffix.lower() in (".jpg", ".jpeg", ".tif", ".tiff") and r.get("pages") == 1]
    pairs, failed = {}, []
    for r in done:
        src, ours = corpus / r["input"], out / r["output"]
        dest = work / r["output"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            exiv2_copy(src, ours, dest)
        except Exception as err:  # noqa: BLE001
            failed.append(f"{r['input']}: {err}")
            continue
        pairs[src] = (ours, dest)
    files = list(pairs) + [p for pair in pairs.values() for p in pair]
    tags, warns = read_tags(files), read_warnings(files)
    score = {"ours": [0, 0, 0], "exiv2": [0, 0, 0]}  # clean, makernotes, broken makernotes
    for src, (ours, theirs) in pairs.items():
        for name, output in (("ours", ours), ("exiv2", theirs)):
            v = judge(src, [output], tags, warns)
            score[name][0] += v["clean"]
            score[name][1] += v["has_makernote"]
            score[name][2] += v["makernote_broken"]
    print(f"{len(pairs)} JPEG/TIFF outputs compared ({len(failed)} exiv2 failures)")
    for name, (clean, makers, broken) in score.items():
        print(f"  {name:6s} clean {clean} of {len(pairs)}; MakerNotes broken {broken} of {makers}")
    for line in failed[:10]:
        print("  exiv2 failed:", line)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
