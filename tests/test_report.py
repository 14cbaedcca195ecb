"""Review sheet: thumbnails (8/16-bit, sizes, safe names, atomic), the review measures and
needs_look, and the HTML page as a real browser renders it (headless Chromium, file:// only)."""

from __future__ import annotations

import base64
import json
import math
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorize_cli.manifest import FileRecord, ManifestWriter, end_record, read_manifest, run_header
from colorize_cli.report.sheet import REPORT_NAME, script_json, write_report
from colorize_cli.report.measures import ReviewThresholds, flat_chroma, needs_look
from colorize_cli.report.measures import colourfulness as colorfulness
from colorize_cli.report.thumbnails import (
    COLOR_SUFFIX,
    ORIGINAL_SUFFIX,
    THUMB_LONG_SIDE,
    THUMBS_DIR,
    ThumbnailWriter,
    shrink,
    thumb_key,
)

DEFAULTS = ReviewThresholds()
FAILED_REASON = "truncated JPEG: image file is truncated"
# A directory "evil<" holding a file whose name is an HTML injection attempt.
EVIL_REL = 'evil</script><img src=x onerror=alert(1)> & "q" \'s.png'


# --------------------------------------------------------------------------- helpers


def scene(h: int, w: int, seed: int) -> np.ndarray:
    """A gray 'photo': a smooth flat sky over the top half, grainy textured ground below."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w), dtype=np.float64)
    img[: h // 2] = np.linspace(215, 190, h // 2)[:, None]
    img[h // 2 :] = rng.integers(20, 235, size=(h - h // 2, w))
    return img.astype(np.uint8)


def tint(gray: np.ndarray, rgb_scale: tuple[float, float, float]) -> np.ndarray:
    """A plausible 'colorized' result: the gray scaled per channel (sepia-like when mild)."""
    return np.clip(gray[..., None] * np.array(rgb_scale), 0, 255).astype(np.uint8)


def chromium_binary() -> str:
    """The test needs a real browser; missing one is a setup error to fix, never a skip."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "headless Chromium is required to test report.html but was not found on PATH; "
        "install it with `apt-get install -y chromium` (Debian/Ubuntu package 'chromium')"
    )


def chromium(tmp: Path, url: str, *action: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on a file:// URL with everything network-related switched off."""
    profile = tmp / f"profile-{time.monotonic_ns()}"
    cmd = [
        chromium_binary(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *action,
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc


class RowParser(HTMLParser):
    """Collects the rendered rows (<article class="row ...">) of a dumped DOM, and every <img>."""

    VOID = {"img", "br", "hr", "input", "meta", "link", "source", "wbr", "area", "col", "embed"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[dict] = []
        self.images: list[dict[str, str | None]] = []
        self.texts: dict[str, str] = {}  # text of elements by id, e.g. pageinfo
        self._stack: list[tuple[str, str, str | None]] = []  # (tag, class, id)
        self._row_depth: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = a.get("class") or ""
        if tag == "img":
            self.images.append(a)
            if self._row_depth is not None:
                self.rows[-1]["imgs"].append(a)
        if tag in self.VOID:
            return
        if tag == "article" and "row" in classes.split():
            self.rows.append({"status": a.get("data-status"), "imgs": [], "text": {}})
            self._row_depth = len(self._stack)
        self._stack.append((tag, classes, a.get("id")))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        while self._stack:
            open_tag, _, _ = self._stack.pop()
            if open_tag == tag:
                break
        if self._row_depth is not None and len(self._stack) <= self._row_depth:
            self._row_depth = None

    def handle_data(self, data: str) -> None:
        for _, classes, ident in self._stack:
            if ident:
                self.texts[ident] = self.texts.get(ident, "") + data
        if self._row_depth is None or not self._stack:
            return
        _, classes, _ = self._stack[-1]
        for cls in classes.split():
            row_text = self.rows[-1]["text"]
            row_text[cls] = row_text.get(cls, "") + data


def parse_dom(text: str) -> RowParser:
    parser = RowParser()
    parser.feed(text)
    parser.close()
    return parser


def rendered(tmp: Path, report: Path, fragment: str = "") -> RowParser:
    return parse_dom(chromium(tmp, report.as_uri() + fragment, "--dump-dom").stdout)


# --------------------------------------------------------------------------- a small run by hand


@pytest.fixture
def small_run(tmp_path: Path) -> dict:
    """Three real gray scans (one 16-bit) and one truncated JPEG, processed 'by hand' the way the
    engine does: decode, colorize (here: fixed tints), thumbnails + measures, manifest records."""
    scans, out = tmp_path / "scans", tmp_path / "out"
    specs = {
        "roll 1/scan 10.png": ("natural", "L"),  # a blue sky over warm ground: a normal result
        "été/gris.png": ((1.0, 1.0, 1.0), "I;16"),  # network gave up: still gray
        EVIL_REL: (None, "L"),  # strong magenta splashed over the flat sky
    }
    writer = ThumbnailWriter(out)
    records = []
    for seed, (rel, (scale, mode)) in enumerate(specs.items()):
        path = scans / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        gray8 = scene(300, 420, seed)
        if mode == "I;16":
            Image.fromarray(gray8.astype(np.uint16) * 257).save(path)  # a real 16-bit PNG
        else:
            Image.fromarray(gray8).save(path)
        with Image.open(path) as im:
            decoded = np.asarray(im)
        assert decoded.dtype == (np.uint16 if mode == "I;16" else np.uint8)
        if scale is None:
            result = np.stack([gray8] * 3, axis=-1)
            result[: 300 // 2] = (230, 40, 220)
        elif scale == "natural":
            result = np.concatenate([tint(gray8[:150], (0.85, 0.95, 1.12)), tint(gray8[150:], (1.1, 1.0, 0.85))])
        else:
            result = tint(gray8, scale)
        if decoded.dtype == np.uint16:
            result = result.astype(np.uint16) * 257
        review = writer.add(rel, decoded, result)
        records.append(
            FileRecord(
                input=rel,
                status="done",
                output=rel,
                seconds=1.5 + seed,
                width=decoded.shape[1],
                height=decoded.shape[0],
                run_id="r1",
                review=review,
            )
        )

    bad = scans / "bad.jpg"
    buf = tmp_path / "whole.jpg"
    Image.fromarray(scene(64, 64, 9)).save(buf, quality=90)
    bad.write_bytes(buf.read_bytes()[:300])
    with pytest.raises(OSError), Image.open(bad) as im:
        im.load()  # it really is a broken file
    records.append(FileRecord(input="bad.jpg", status="failed", reason=FAILED_REASON, run_id="r1"))

    manifest = out / "manifest.jsonl"
    settings = {"color": {"saturation": 1.0, "upsample": "guided"}, "output": {"format": None}}
    with ManifestWriter(manifest) as mw:
        mw.write(run_header("r1", "chromanet-v1", "c0ffee" * 10 + "beef", settings, ["colorize-dir"],
                            started="2024-05-01T10:00:00Z"))  # fmt: skip
        for rec in records:
            mw.write(rec)
        mw.write(end_record("r1", {"done": 3, "failed": 1, "skipped": 0}, False,
                            finished="2024-05-01T10:00:08Z"))  # fmt: skip
    return {"out": out, "manifest": manifest, "records": records, "tmp": tmp_path}


# --------------------------------------------------------------------------- thumbnails


def test_thumb_key_is_hex_and_distinct_and_names_cannot_escape(tmp_path: Path) -> None:
    rels = ["a/b.png", "a\\b.png", "../../etc/passwd", "x" * 5000, "bad\udcff.png", "a/b.png "]
    keys = [thumb_key(r) for r in rels]
    assert len(set(keys)) == len(rels)
    assert all(len(k) == 32 and set(k) <= set("0123456789abcdef") for k in keys)
    assert thumb_key(Path("a") / "b.png") == thumb_key("a/b.png")  # same key as the manifest's input

    out = tmp_path / "out"
    writer = ThumbnailWriter(out)
    gray = scene(40, 60, 0)
    for rel in rels:
        writer.add(rel, gray, tint(gray, (1.1, 1.0, 0.9)))
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert written and all(p.parent == out / THUMBS_DIR for p in written)
    assert len(written) == 2 * len(rels)
    assert not [p for p in written if p.name.endswith(".tmp")]


def test_sixteen_bit_is_rounded_not_clamped(tmp_path: Path) -> None:
    """16-bit thumbnails use the one 16-to-8-bit rule of every 8-bit output (to nearest, v / 257)."""
    rng = np.random.default_rng(1)
    a16 = rng.integers(0, 65536, size=(700, 900), dtype=np.uint16)
    assert np.array_equal(shrink(a16), shrink(np.rint(a16 / 257.0).astype(np.uint8)))
    assert np.array_equal(shrink(a16.astype(">u2")), shrink(a16))  # big-endian TIFF data

    writer = ThumbnailWriter(tmp_path)
    mid = np.full((300, 400), 0x8080, dtype=np.uint16)  # 50 % gray in 16 bits
    writer.add("mid.tif", mid, np.stack([mid] * 3, axis=-1))
    orig, color = writer.paths("mid.tif")
    with Image.open(orig) as im:
        assert im.mode == "L"
        assert abs(float(np.asarray(im).mean()) - 128) < 1.5  # clamping would give 255
    with Image.open(color) as im:
        assert im.mode == "RGB"
        assert abs(float(np.asarray(im).mean()) - 128) < 1.5


def test_thumbnail_sizes_keep_aspect_and_never_enlarge(tmp_path: Path) -> None:
    writer = ThumbnailWriter(tmp_path)
    for (h, w), rel in [((1000, 3000), "wide"), ((5000, 300), "tall"), ((40, 30), "tiny")]:
        gray = scene(h, w, 2)
        writer.add(rel, gray, tint(gray, (1.0, 0.9, 0.8)))
        for path in writer.paths(rel):
            with Image.open(path) as im:
                tw, th = im.size
            if max(h, w) <= THUMB_LONG_SIDE:
                assert (th, tw) == (h, w)
            else:
                assert max(tw, th) == THUMB_LONG_SIDE
                assert abs(tw / th - w / h) < 0.05 * (w / h) + 0.02


def test_strip_reduction_matches_one_shot_pillow() -> None:
    """Big scans are reduced in strips to bound memory; the pixels must equal a one-shot reduce."""
    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, size=(6000, 2000, 3), dtype=np.uint8)  # several strips
    factor = 6000 // (2 * THUMB_LONG_SIDE)
    expected = Image.fromarray(big).reduce(factor)
    expected.thumbnail((THUMB_LONG_SIDE, THUMB_LONG_SIDE), Image.Resampling.LANCZOS, reducing_gap=None)
    assert np.array_equal(shrink(big), np.asarray(expected))


def test_add_is_atomic_replaces_and_handles_missing_result(tmp_path: Path) -> None:
    writer = ThumbnailWriter(tmp_path)
    gray = scene(120, 160, 4)
    writer.add("a.png", gray, tint(gray, (1.2, 1.0, 0.8)))
    orig, color = writer.paths("a.png")
    first = color.read_bytes()
    writer.add("a.png", gray, tint(gray, (0.8, 1.0, 1.2)))  # re-run with another result
    assert color.read_bytes() != first
    assert oct(color.stat().st_mode & 0o777) == "0o644"

    assert writer.add("nores.png", gray, None) == {}
    o2, c2 = writer.paths("nores.png")
    assert o2.is_file() and not c2.exists()
    leftovers = [p.name for p in (tmp_path / THUMBS_DIR).iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_add_rejects_bad_arrays_with_clear_messages(tmp_path: Path) -> None:
    writer = ThumbnailWriter(tmp_path)
    gray = scene(50, 60, 5)
    with pytest.raises(TypeError, match="uint8 or uint16, got float32"):
        writer.add("f.png", gray.astype(np.float32), None)
    with pytest.raises(ValueError, match=r"does not match original \(50, 60\)"):
        writer.add("m.png", gray, np.zeros((50, 61, 3), np.uint8))
    with pytest.raises(ValueError, match="must be a gray"):
        writer.add("c.png", np.zeros((50, 60, 3), np.uint8), None)
    assert list((tmp_path / THUMBS_DIR).iterdir()) == []


# --------------------------------------------------------------------------- measures


def test_colorfulness_follows_hasler_suesstrunk() -> None:
    gray = np.stack([scene(64, 64, 6)] * 3, axis=-1)
    assert colorfulness(gray) == pytest.approx(0.0, abs=1e-9)
    halves = np.zeros((10, 20, 3), np.uint8)
    halves[:, :10] = (255, 0, 0)
    halves[:, 10:] = (0, 255, 0)
    # rg = +-255 (sd 255, mean 0); yb = 127.5 everywhere (sd 0, mean 127.5)
    assert colorfulness(halves) == pytest.approx(255 + 0.3 * 127.5)
    sepia = tint(scene(64, 64, 7), (1.12, 1.0, 0.82))
    assert 0 < colorfulness(sepia) < colorfulness(halves)


def test_flat_chroma_sees_colour_only_where_the_scan_is_flat() -> None:
    gray = shrink(scene(400, 400, 8))
    h = gray.shape[0]
    in_sky = np.stack([gray] * 3, axis=-1)
    in_sky[: h // 2] = (230, 40, 220)
    on_ground = np.stack([gray] * 3, axis=-1)
    on_ground[h // 2 :] = (230, 40, 220)

    sky_chroma, sky_fraction = flat_chroma(gray, in_sky)
    ground_chroma, ground_fraction = flat_chroma(gray, on_ground)
    assert sky_fraction == ground_fraction  # flatness comes from the original only
    assert 0.3 < sky_fraction < 0.55  # about the sky half, minus its eroded border
    assert sky_chroma > 60
    assert ground_chroma < 2
    assert flat_chroma(gray, np.stack([gray] * 3, axis=-1))[0] < 1


def test_needs_look_scores_and_explains() -> None:
    t = DEFAULTS
    fine = {"colorfulness": 30.0, "flat_chroma": 12.0, "flat_fraction": 0.4}
    assert needs_look(fine) == (0.0, [])

    score, reasons = needs_look({**fine, "colorfulness": t.gray_below / 4})
    assert score > 1 and len(reasons) == 1 and reasons[0].startswith("nearly gray")
    score2, _ = needs_look({**fine, "colorfulness": t.gray_below / 2})
    assert score2 < score  # grayer ranks first

    score, reasons = needs_look({**fine, "colorfulness": t.saturated_above * 1.5})
    assert score > 1 and reasons[0].startswith("very saturated")

    blotch = {**fine, "flat_chroma": t.flat_chroma_above + 20}
    score_flat, reasons = needs_look(blotch)
    assert reasons and reasons[0].startswith("strong colour in flat areas")
    assert needs_look({**blotch, "flat_fraction": t.flat_min_fraction / 2}) == (0.0, [])

    both, reasons = needs_look({**blotch, "colorfulness": t.saturated_above * 1.5})
    assert len(reasons) == 2 and both > score_flat

    strict = ReviewThresholds(gray_below=40.0)
    assert needs_look(fine, strict)[1][0].startswith("nearly gray")

    for junk in (None, {}, {"colorfulness": "abc"}, {"colorfulness": math.nan}, [1, 2], {"colorfulness": True}):
        assert needs_look(junk) == (0.0, [])  # type: ignore[arg-type]


def test_script_json_cannot_close_the_script_element() -> None:
    data = {"rows": [["</script><!-- <b>&amp;", "x</SCRIPT >"]]}
    text = script_json(data)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == data


# --------------------------------------------------------------------------- the page


def test_report_requires_an_existing_manifest(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest not found: .*nope.jsonl"):
        write_report(tmp_path, tmp_path / "nope.jsonl")
    assert not (tmp_path / REPORT_NAME).exists()


def test_report_survives_undecodable_names_and_a_torn_manifest(tmp_path: Path) -> None:
    """A Linux name that is not UTF-8 reaches us as lone surrogates; a crash leaves a torn line."""
    name = "roll\udcff/scan.png"
    manifest = tmp_path / "manifest.jsonl"
    with ManifestWriter(manifest) as mw:
        mw.write(run_header("r", "m", "0" * 64, {"input_root": "/scans/\udcff"}, []))
        mw.write(FileRecord(input=name, status="done", review={"colorfulness": 1.0}))
    with open(manifest, "ab") as f:
        f.write(b'{"type": "file", "input": "half')
    text = write_report(tmp_path, manifest).read_text("utf-8")
    data = json.loads(text.split('id="report-data">', 1)[1].split("</script>", 1)[0])
    (row,) = data["rows"]
    assert row[data["cols"].index("rel")] == name
    assert row[data["cols"].index("flags")][0].startswith("nearly gray")


def test_summary_values_are_escaped_by_the_template(tmp_path: Path) -> None:
    """The summary is rendered by Jinja2 with autoescape on: header values stay text."""
    evil = '<b onmouseover="alert(1)">m</b> & co'
    manifest = tmp_path / "manifest.jsonl"
    with ManifestWriter(manifest) as mw:
        mw.write(run_header("r", evil, "0" * 64, {"color": {evil: evil}}, []))
        mw.write(FileRecord(input="a.png", status="done"))
    text = write_report(tmp_path, manifest).read_text("utf-8")
    assert "<b " not in text and "alert(1)\">" not in text
    assert "&lt;b onmouseover=&#34;alert(1)&#34;&gt;m&lt;/b&gt; &amp; co" in text

    class Tags(HTMLParser):
        tags: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)

    parser = Tags()
    parser.feed(text)
    assert "b" not in parser.tags


def test_report_is_self_contained_escaped_and_atomic(small_run: dict) -> None:
    out, manifest = small_run["out"], small_run["manifest"]
    path = write_report(out, manifest)
    assert path == out / REPORT_NAME
    text = path.read_text("utf-8")

    class Refs(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.refs: list[str] = []
            self.tags: list[str] = []
            self.data_script = ""
            self._in_data = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)
            a = dict(attrs)
            self.refs += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action")]
            self._in_data = a.get("id") == "report-data"

        def handle_endtag(self, tag: str) -> None:
            self._in_data = False

        def handle_data(self, data: str) -> None:
            if self._in_data:
                self.data_script += data

    refs = Refs()
    refs.feed(text)
    for ref in refs.refs:
        assert not any(bad in ref.lower() for bad in ("http:", "https:", "//")), ref
    assert "link" not in refs.tags and "iframe" not in refs.tags
    assert "@import" not in text and "url(" not in text
    assert "<img" not in text  # rows are built by the page script, never pasted as HTML
    assert EVIL_REL not in text and "</script><img" not in text
    assert refs.tags.count("article") == 0

    data = json.loads(refs.data_script)
    rels = [row[data["cols"].index("rel")] for row in data["rows"]]
    assert sorted(rels) == sorted(r.input for r in small_run["records"])

    before = path.stat().st_mtime_ns
    time.sleep(0.01)
    write_report(out, manifest)
    assert path.stat().st_mtime_ns != before
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


def test_report_renders_in_headless_chromium(small_run: dict) -> None:
    out, manifest, records, tmp = small_run["out"], small_run["manifest"], small_run["records"], small_run["tmp"]
    report = write_report(out, manifest)
    dom = rendered(tmp, report)

    by_name = {row["text"].get("name"): row for row in dom.rows}
    assert set(by_name) == {r.input for r in records}, by_name.keys()
    failed = by_name["bad.jpg"]
    assert failed["status"] == "failed"
    assert failed["text"]["reason"] == FAILED_REASON
    assert failed["imgs"] == []

    # Injection attempt shows as text, never as markup.
    assert by_name[EVIL_REL]["status"] == "done"
    assert all(img.get("src") != "x" and "onerror" not in img for img in dom.images)

    for rec in records:
        if rec.status != "done":
            continue
        imgs = by_name[rec.input]["imgs"]
        key = thumb_key(rec.input)
        assert [img["src"] for img in imgs] == [
            f"{THUMBS_DIR.as_posix()}/{key}{ORIGINAL_SUFFIX}",
            f"{THUMBS_DIR.as_posix()}/{key}{COLOR_SUFFIX}",
        ]
        assert all(img.get("loading") == "lazy" for img in imgs)
        assert all((out / img["src"]).is_file() for img in imgs)
        for img in imgs:
            assert not img["src"].lower().startswith(("http:", "https:", "//"))

    # "Needs a look" order: the failure, then the flagged results (most urgent first), then the rest.
    order = [row["text"]["name"] for row in dom.rows]
    assert order[0] == "bad.jpg"
    assert by_name["été/gris.png"]["text"]["flag"].startswith("nearly gray")
    assert "colour blotch where the scan is flat" in by_name[EVIL_REL]["text"]["flag"]
    assert "flag" not in by_name["roll 1/scan 10.png"]["text"]
    assert order[-1] == "roll 1/scan 10.png"

    # Summary: counts, throughput (4 files in 8 s), time, model.
    assert dom.texts["count-done"] == "3" and dom.texts["count-failed"] == "1"
    assert dom.texts["count-flagged"] == "2"
    full = chromium(tmp, report.as_uri(), "--dump-dom").stdout
    assert "0.50 files/s" in full and "8.0 s" in full and "chromanet-v1" in full

    # The filter works in the browser (and is kept in the URL fragment).
    only_failed = rendered(tmp, report, "#filter=failed")
    assert [row["text"]["name"] for row in only_failed.rows] == ["bad.jpg"]


def test_report_screenshot_is_not_blank(small_run: dict) -> None:
    out, manifest, tmp = small_run["out"], small_run["manifest"], small_run["tmp"]
    report = write_report(out, manifest)
    shot = tmp / "shot.png"
    chromium(tmp, report.as_uri(), f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.is_file(), "chromium wrote no screenshot"
    with Image.open(shot) as im:
        assert im.size == (1280, 2000)
        px = np.asarray(im.convert("RGB")).astype(np.int16)
    assert px.std() > 20
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 200
    # The magenta blotch of the flagged thumbnail is on screen, so thumbnails really loaded.
    magenta = (px[..., 0] > 180) & (px[..., 1] < 90) & (px[..., 2] > 170)
    assert magenta.sum() > 2000


def test_fifty_thousand_rows_write_fast_and_page(tmp_path: Path) -> None:
    out = tmp_path / "big"
    manifest = out / "manifest.jsonl"
    statuses = ["done"] * 45 + ["failed"] * 3 + ["skipped"] * 2
    rng = np.random.default_rng(10)
    cf = rng.uniform(0, 120, 50_000).round(2)
    with ManifestWriter(manifest, fsync=False) as mw:
        mw.write(run_header("big", "chromanet-v1", "ab" * 32, {}, [], started="2024-05-01T00:00:00Z"))
        for i in range(50_000):
            status = statuses[i % len(statuses)]
            mw.write({
                "type": "file", "input": f"box {i // 1000:03d}/folder/scan_{i:06d}.tif",
                "status": status, "output": f"box {i // 1000:03d}/folder/scan_{i:06d}.tif",
                "reason": None if status == "done" else "truncated TIFF: tile 3 missing",
                "seconds": 0.8, "width": 4000, "height": 3000, "run_id": "big", "notes": [],
                "review": {"colorfulness": cf[i], "flat_chroma": 20.0, "flat_fraction": 0.3}
                if status == "done" else None,
            })  # fmt: skip
        mw.write(end_record("big", {"done": 45_000, "failed": 3_000, "skipped": 2_000}, False,
                            finished="2024-05-01T05:00:00Z"))  # fmt: skip
    assert sum(1 for _ in read_manifest(manifest)) == 50_002

    start = time.perf_counter()
    report = write_report(out, manifest)
    elapsed = time.perf_counter() - start
    size = report.stat().st_size
    print(f"\n50,000-row report: {elapsed:.2f} s, {size / 1e6:.2f} MB")
    assert elapsed < 15, f"writing a 50,000-row report took {elapsed:.1f} s"
    assert size < 15e6, f"50,000-row report is {size / 1e6:.1f} MB"

    dom = rendered(tmp_path, report, "#view=list")
    assert len(dom.rows) == 100  # one page, not 50,000 DOM rows
    assert dom.rows[0]["status"] == "failed"
    assert "page 1 of 500" in dom.texts["pageinfo"]
    assert dom.texts["count-failed"] == "3,000"
    last_page = rendered(tmp_path, report, "#view=list&filter=skipped&sort=name&page=20")
    assert len(dom.rows) == 100 and len(last_page.rows) == 100
    assert all(row["status"] == "skipped" for row in last_page.rows)
    assert "page 20 of 20" in last_page.texts["pageinfo"]
    names = [row["text"]["name"] for row in last_page.rows]
    assert names == sorted(names)

    from devtools import Browser  # the compare view walks 50,000 files across pages

    with Browser(tmp_path / "profile-big") as browser:
        # A large run opens in the grid: its first screen, timed by the page itself (navigation to
        # the first cells in the DOM: the 10 MB page parsed, 50,000 rows filtered and sorted)
        browser.open(report.as_uri())
        shown = browser.wait_for("window.reviewShown")
        script = browser.eval("window.reviewReady")
        cells = browser.eval("document.querySelectorAll('#rows .cell').length")
        print(f"50,000-row sheet, grid: first screen {shown:.0f} ms after navigation ({script:.0f} ms of script), {cells} cells")
        assert cells == 240 and browser.eval("document.querySelectorAll('article.row').length") == 0
        assert shown < 8000, f"the first screen of a 50,000-row sheet took {shown:.0f} ms"
        browser.key("End")  # the keys walk all 50,000, page by page
        assert "page 209 of 209" in browser.eval("document.getElementById('pageinfo').textContent")
        assert browser.eval("document.querySelector('#rows .cell.sel').dataset.pos") == "49999"
        browser.open("about:blank")  # a new fragment alone would not reload the page
        browser.open(report.as_uri() + "#view=list&sort=order")
        browser.click('article.row[data-index="98"]')  # skipped: nothing to compare, no compare view
        assert browser.eval("document.getElementById('compare').hidden")
        assert browser.eval("""document.querySelector('article.row[data-index="98"] button.open')""") is None
        browser.click('article.row[data-index="97"]')  # failed: its original
        browser.wait_for("!document.getElementById('compare').hidden")
        for key in ("ArrowRight", "j", "k"):  # the first key steps over the two skipped files
            browser.key(key)
        assert browser.eval("document.getElementById('c-pos').textContent") == "101 of 50,000"
        assert browser.eval("document.getElementById('c-name').textContent") == "box 000/folder/scan_000100.tif"
        browser.key("Escape")
        assert "page 2 of 500" in browser.eval("document.getElementById('pageinfo').textContent")
        assert browser.eval("document.querySelectorAll('article.row').length") == 100


def test_a_real_run_with_report_shows_every_file_in_chromium(tmp_path: Path, random_weights: Path) -> None:
    """End to end: `colorize-dir --report` on a small batch with one bad file, then the page as
    headless Chromium renders it (file:// only, no network)."""
    from typer.testing import CliRunner

    from colorize_cli.cli.app import app

    src, out = tmp_path / "scans", tmp_path / "color"
    (src / "roll 2").mkdir(parents=True)
    for i, rel in enumerate(("a.png", "roll 2/b.jpg", "roll 2/c.tif")):
        Image.fromarray(scene(90, 120, i)).save(src / rel)
    good = (src / "a.png").read_bytes()
    Image.fromarray(scene(90, 120, 9)).save(src / "broken.png")
    (src / "broken.png").write_bytes((src / "broken.png").read_bytes()[:200])  # truncated mid-data
    result = CliRunner().invoke(app, ["dir", str(src), "--out", str(out), "--weights", str(random_weights),
                                      "--render-size", "64", "--device", "cpu", "--report", "--quiet"])
    assert result.exit_code == 1, result.output  # one file failed
    assert (src / "a.png").read_bytes() == good
    dom = rendered(tmp_path, out / REPORT_NAME)
    by_name = {row["text"].get("name"): row for row in dom.rows}
    assert set(by_name) == {"a.png", "roll 2/b.jpg", "roll 2/c.tif", "broken.png"}
    originals = _report_data(out / REPORT_NAME)["originals"]  # the run tells the page where INPUT is
    assert (out / originals / "a.png").resolve() == (src / "a.png").resolve()
    assert by_name["broken.png"]["status"] == "failed"
    assert "truncated" in by_name["broken.png"]["text"]["reason"].lower()
    for rel in ("a.png", "roll 2/b.jpg", "roll 2/c.tif"):
        assert by_name[rel]["status"] == "done"
        assert len(by_name[rel]["imgs"]) == 2 and all((out / i["src"]).is_file() for i in by_name[rel]["imgs"])


# --------------------------------------------------------------------------- full-size compare view


COMPARE_FILES = {  # rel -> (size (w, h), Pillow format); a '#', spaces and an accent test the links
    "roll 1/scan 10.png": ((700, 500), "PNG"),
    "été/gris #1.png": ((640, 900), "PNG"),
    "big.jpg": ((1800, 1200), "JPEG"),
    "scan.tif": ((300, 200), "TIFF"),
    "last.webp": ((420, 380), "WEBP"),
}


@pytest.fixture
def compare_run(tmp_path: Path) -> dict:
    """Originals in scans/, results of the same size in out/, thumbnails and a manifest; the run
    header does not name the input folder (as in manifests written before it was recorded)."""
    scans, out = tmp_path / "scans", tmp_path / "out"
    writer = ThumbnailWriter(out)
    records = []
    for seed, (rel, ((w, h), fmt)) in enumerate(COMPARE_FILES.items()):
        gray = scene(h, w, seed)
        color = tint(gray, (1.15, 1.0, 0.8))
        for root, pixels in ((scans, gray), (out, color)):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / rel, format=fmt)
        review = writer.add(rel, gray, color)
        records.append(FileRecord(input=rel, status="done", output=rel, seconds=1.0, width=w, height=h,
                                  run_id="r1", review=review))  # fmt: skip
    manifest = out / "manifest.jsonl"
    with ManifestWriter(manifest) as mw:
        mw.write(run_header("r1", "chromanet-v1", "ab" * 32, {}, [], started="2024-05-01T10:00:00Z"))
        for rec in records:
            mw.write(rec)
        mw.write(end_record("r1", {"done": len(records), "failed": 0, "skipped": 0}, False,
                            finished="2024-05-01T10:00:05Z"))  # fmt: skip
    return {"scans": scans, "out": out, "manifest": manifest, "records": records, "tmp": tmp_path}


def _report_data(report: Path) -> dict:
    text = report.read_text("utf-8")
    return json.loads(text.split('id="report-data">', 1)[1].split("</script>", 1)[0])


def test_report_links_originals_relative_to_the_page(compare_run: dict) -> None:
    out, scans, manifest = compare_run["out"], compare_run["scans"], compare_run["manifest"]
    assert _report_data(write_report(out, manifest))["originals"] is None  # not recorded, not given
    originals = _report_data(write_report(out, manifest, input_root=scans))["originals"]
    assert originals == "../scans/"
    from urllib.parse import unquote

    for rel in COMPARE_FILES:
        assert (out / unquote(originals) / rel).resolve() == (scans / rel).resolve()

    recorded = compare_run["tmp"] / "recorded.jsonl"  # a header that names the input folder is used
    with ManifestWriter(recorded) as mw:
        mw.write(run_header("r2", "m", "0" * 64, {"input_root": str(scans / "été")}, []))
    assert _report_data(write_report(out, recorded))["originals"] == "../scans/%C3%A9t%C3%A9/"


def _compare_state(browser) -> dict:
    return browser.eval(
        """(() => {
          const box = document.getElementById('compare');
          const imgs = [...document.querySelectorAll('#c-panes .pane')].map(p => {
            const i = p.querySelector('img'); const s = p.querySelector('.scroll');
            const r = i ? i.getBoundingClientRect() : null;
            return {title: p.querySelector('h2').firstChild.textContent, note: p.querySelector('.note').textContent,
                    src: i ? i.getAttribute('src') : null, url: i ? i.src : null, complete: i ? i.complete : null,
                    natural: i ? [i.naturalWidth, i.naturalHeight] : null, shown: r ? [r.width, r.height] : null,
                    pane: [s.clientWidth, s.clientHeight]};
          });
          return {open: !box.hidden, name: document.getElementById('c-name').textContent,
                  pos: document.getElementById('c-pos').textContent, panes: imgs,
                  rows: [...document.querySelectorAll('article.row h2')].map(h => h.textContent),
                  page: document.getElementById('pageinfo').textContent};
        })()"""
    )


def _wait_images(browser) -> None:
    browser.wait_for("[...document.querySelectorAll('#c-panes img')].every(i => i.complete)")


def test_compare_view_shows_both_images_at_full_size_and_keys_move_between_files(compare_run: dict) -> None:
    """Headless Chromium, driven like a user: click a row, look, ArrowRight/j/ArrowLeft/k, f, Escape."""
    from urllib.parse import quote
    from urllib.request import url2pathname

    from devtools import Browser

    out, scans, tmp, records = compare_run["out"], compare_run["scans"], compare_run["tmp"], compare_run["records"]
    report = write_report(out, compare_run["manifest"], input_root=scans, page_size=2)
    order = [r.input for r in records]  # "processing order": the manifest's order

    def check_full_size(state: dict, rel: str) -> None:
        assert state["open"] and state["name"] == rel, state
        original, result = state["panes"]
        assert (original["title"], result["title"]) == ("Original", "Result")
        for pane, root in ((original, scans), (result, out)):
            path = Path(url2pathname(pane["url"].removeprefix("file://")))
            if COMPARE_FILES[rel][1] == "TIFF":  # no browser draws TIFF: the preview, at the scan's scale
                assert "cannot show this format" in pane["note"]
                assert path.parent == out / THUMBS_DIR and pane["natural"][0] <= THUMB_LONG_SIDE
                assert pane["shown"][0] == COMPARE_FILES[rel][0][0]
                continue
            assert path.resolve() == (root / rel).resolve(), (pane["url"], root / rel)
            with Image.open(root / rel) as im:
                size = list(im.size)
            assert pane["complete"] and pane["note"] == "", pane
            assert pane["natural"] == size, (rel, pane)  # the file itself, not a thumbnail
            assert pane["shown"] == size, (rel, pane)  # drawn at 1:1, scrollable

    with Browser(tmp / "profile-compare") as browser:
        browser.open(report.as_uri() + "#sort=order")
        assert _compare_state(browser)["rows"] == order[:2]
        assert not _compare_state(browser)["open"]

        browser.click('article.row[data-index="1"]')
        _wait_images(browser)
        state = _compare_state(browser)
        check_full_size(state, order[1])
        assert state["pos"] == "2 of 5"
        # On screen: the gray original on the left, the tinted result on the right, both painted.
        browser.eval("Promise.all([...document.querySelectorAll('#c-panes img')].map(i => i.decode()))"
                     ".then(() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done))))")
        shot = tmp / "compare.png"
        shot.write_bytes(base64.b64decode(browser.page("Page.captureScreenshot")["data"]))
        with Image.open(shot) as im:
            px = np.asarray(im.convert("RGB")).astype(np.int16)
        top = 120  # below the toolbar and the pane titles
        left, right = px[top:, 40 : px.shape[1] // 2 - 40], px[top:, px.shape[1] // 2 + 40 : -40]
        assert left.std() > 20 and np.abs(left[..., 0] - left[..., 2]).mean() < 3  # a gray photo, not a blank pane
        assert right.std() > 20 and (right[..., 0] - right[..., 2]).mean() > 15  # the colour result

        steps = [("ArrowRight", 2), ("j", 3), ("ArrowLeft", 2), ("k", 1), ("ArrowRight", 2), ("n", 3), ("j", 4),
                 ("j", 4), ("p", 3)]  # fmt: skip
        for key, expected in steps:
            browser.key(key)
            _wait_images(browser)
            check_full_size(_compare_state(browser), order[expected])

        browser.key("ArrowLeft")  # to big.jpg, larger than the window: fit scales it down, f again undoes it
        _wait_images(browser)
        assert _compare_state(browser)["name"] == "big.jpg"
        browser.key("f")
        fitted = _compare_state(browser)["panes"][1]
        assert fitted["shown"][0] <= fitted["pane"][0] and fitted["shown"][1] <= fitted["pane"][1] + 0.5
        assert fitted["shown"][0] < 1800
        browser.key("f")
        check_full_size(_compare_state(browser), "big.jpg")

        browser.key("Escape")  # closes on the page that holds the file last shown
        closed = _compare_state(browser)
        assert not closed["open"] and closed["rows"] == order[2:4]
        assert "page 2 of 3" in closed["page"]
        assert all(u.startswith(("file:", "data:")) for u in browser.requests), browser.requests  # offline
        for rel in (r for r in order[1:] if COMPARE_FILES[r][1] != "TIFF"):  # each shown pair was fetched
            assert any(u.endswith(quote(rel)) and "/scans/" in u for u in browser.requests), rel
            assert any(u.endswith(quote(rel)) and "/out/" in u for u in browser.requests), rel
