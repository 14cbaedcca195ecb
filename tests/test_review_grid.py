"""The review sheet at archive scale (issue 43), judged in headless Chromium at 1400 x 1000: a
177-file run opens in the grid with at least 24 results on the first screen; a keyboard walk marks
two results rejected; the list the sheet saves (a real download) fed to `colorize-dir --only-from`
redoes exactly those two and leaves every other record and output alone. Skipped non-images offer
no compare view; failed files show their kind. And `--only-from` refuses a list it cannot use."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from colorize_cli.cli.app import app
from colorize_cli.discover.listed import read_list
from colorize_cli.errors import UsageError
from colorize_cli.manifest import read_manifest
from colorize_cli.report.sheet import REPORT_NAME

FILES = 177
VISIBLE = """(() => [...document.querySelectorAll('#rows .cell')].filter(c => {
  const r = c.getBoundingClientRect();
  return r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth && r.width > 100;
}).length)()"""


def _scans(src: Path) -> None:
    """177 small gray photographs in three folders, a text file and a truncated PNG."""
    rng = np.random.default_rng(43)
    y, x = np.mgrid[0:60, 0:80]
    for i in range(FILES):
        img = 40 + 150 * (y / 60) * (0.5 + 0.5 * np.cos(x / (7 + i % 11))) + rng.normal(0, 6, (60, 80))
        path = src / f"box {i // 60 + 1}" / f"scan {i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    (src / "box 1" / "notes.txt").write_text("inventory of box 1\n")
    Image.fromarray(np.full((60, 80), 128, np.uint8)).save(src / "broken.png")
    (src / "broken.png").write_bytes((src / "broken.png").read_bytes()[:60])


def _dir(src: Path, out: Path, weights: Path, *extra: str):
    return CliRunner().invoke(app, ["dir", str(src), "--out", str(out), "--weights", str(weights), "--render-size", "64",
                                    "--device", "cpu", "--quiet", *extra])


def _data(report: Path) -> dict:
    text = report.read_text("utf-8")
    return json.loads(text.split('id="report-data">', 1)[1].split("</script>", 1)[0])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_grid_keyboard_reject_list_and_rerun_of_exactly_those(tmp_path: Path, random_weights: Path) -> None:
    from devtools import Browser

    src, out, downloads = tmp_path / "scans", tmp_path / "color", tmp_path / "downloads"
    _scans(src)
    started = time.perf_counter()
    first = _dir(src, out, random_weights, "--report")
    print(f"\n{FILES}-file run with --report: {time.perf_counter() - started:.1f} s")
    assert first.exit_code == 1, first.output  # broken.png failed
    report = out / REPORT_NAME
    data = _data(report)
    col = {name: i for i, name in enumerate(data["cols"])}
    rel_of = [row[col["rel"]] for row in data["rows"]]
    manifest = out / "manifest.jsonl"
    before = manifest.read_bytes()
    outputs = {p: _digest(p) for p in out.rglob("*.png") if "report" not in p.parts}
    assert len(outputs) == FILES

    with Browser(tmp_path / "profile", width=1400, height=1000) as browser:
        browser.downloads_to(downloads)
        browser.page("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1, mobile=False)
        browser.open(report.as_uri())
        assert browser.eval("[innerWidth, innerHeight]") == [1400, 1000]
        assert browser.eval("document.getElementById('rows').classList.contains('grid')")  # a large run: the grid
        visible = browser.eval(VISIBLE)
        print(f"cells fully visible at 1400 x 1000 without scrolling: {visible}")
        assert visible >= 24
        assert browser.eval("window.scrollY") == 0

        # "needs a look": the failure first, with its kind; the skipped non-image last, no compare view
        cells = browser.eval("[...document.querySelectorAll('#rows .cell')].map(c => [c.dataset.status, c.querySelector('.badge').textContent])")
        assert cells[0][0] == "failed" and cells[0][1].startswith("failed: input"), cells[0]
        assert cells[-1] == ["skipped", "skipped"]
        browser.key("End")
        browser.key("Enter")  # the skipped text file: nothing opens
        assert browser.eval("document.getElementById('compare').hidden")
        browser.key("Home")
        browser.key("ArrowRight")
        browser.key("Enter")  # a result: the compare view, then back
        browser.wait_for("!document.getElementById('compare').hidden")
        browser.key("Escape")
        assert browser.eval("document.getElementById('compare').hidden")
        browser.key("o")  # the original in place of the result
        assert browser.eval("document.querySelector('.cell.sel').classList.contains('showorig')")
        assert browser.eval("document.querySelector('.cell.sel .orig').getAttribute('src').endsWith('.o.jpg')")
        browser.key("o")

        # the keyboard walk: two results marked rejected (and one accepted, which the list leaves out)
        for key in ("ArrowRight", "r", "ArrowDown", "ArrowLeft", "r", "ArrowDown", "a"):
            browser.key(key)
        marked = browser.eval("[...document.querySelectorAll('#rows .cell.mark-reject')].map(c => +c.dataset.index)")
        assert len(marked) == 2 and browser.eval("document.querySelectorAll('#rows .cell.mark-accept').length") == 1
        rejected = sorted(rel_of[i] for i in marked)
        assert all(data["rows"][i][col["status"]] == "done" for i in marked)
        assert "2 rejected" in browser.eval("document.getElementById('markinfo').textContent")

        browser.click("#save-list")
        saved = downloads / "rejected.txt"
        deadline = time.monotonic() + 30
        while not saved.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert saved.is_file(), list(downloads.iterdir())
        # the marks outlive a reload (kept in this browser, per run)
        browser.open("about:blank")
        browser.open(report.as_uri())
        assert browser.eval("document.querySelectorAll('#rows .cell.mark-reject').length") == 2
        assert all(u.startswith(("file:", "data:", "blob:")) for u in browser.requests), browser.requests  # offline

    lines = saved.read_text("utf-8").splitlines()
    assert lines[0].startswith("# ") and sorted(line for line in lines[1:]) == rejected
    assert read_list(saved) == frozenset(rejected)

    # the loop: redo only those two, with other settings, into the same folder
    again = _dir(src, out, random_weights, "--only-from", str(saved), "--saturation", "0.5", "--report")
    assert again.exit_code == 0, again.output
    after = manifest.read_bytes()
    assert after.startswith(before)  # every earlier record untouched
    new = [json.loads(line) for line in after[len(before):].decode("utf-8").splitlines()]
    files = [rec for rec in new if rec["type"] == "file"]
    assert sorted(rec["input"] for rec in files) == rejected and all(rec["status"] == "done" for rec in files)
    header = next(rec for rec in new if rec["type"] == "run")
    assert header["settings"]["color"]["saturation"] == 0.5
    for path, digest in outputs.items():
        rel = path.relative_to(out).as_posix()
        assert (_digest(path) != digest) == (rel in rejected), rel  # the two rewritten, the rest as they were
    latest = {rec["input"]: rec for rec in read_manifest(manifest) if rec.get("type") == "file"}
    assert latest["broken.png"]["status"] == "failed" and latest["box 1/notes.txt"]["status"] == "skipped"


def test_list_view_failed_rows_show_kind_and_skipped_have_no_compare_button(tmp_path: Path) -> None:
    """A hand-made manifest: a result, a failure with its kind, a skipped document."""
    from devtools import Browser

    from colorize_cli.manifest import FileRecord, ManifestWriter, run_header
    from colorize_cli.report.sheet import write_report

    manifest = tmp_path / "manifest.jsonl"
    with ManifestWriter(manifest) as mw:
        mw.write(run_header("r", "m", "0" * 64, {}, []))
        mw.write(FileRecord(input="a.png", status="done", output="a.png", review={"chroma_p90": 3.0}))
        mw.write(FileRecord(input="b.tif", status="failed", reason="TIFF tile 3 is missing", kind="input truncated"))
        mw.write(FileRecord(input="c.pdf", status="skipped", reason="PDF documents are not colorized"))
    report = write_report(tmp_path, manifest)
    with Browser(tmp_path / "profile") as browser:
        browser.open(report.as_uri() + "#view=list")
        rows = browser.eval("""[...document.querySelectorAll('article.row')].map(r => ({status: r.dataset.status,
            kind: (r.querySelector('.kind') || {}).textContent || '', reason: (r.querySelector('.reason') || {}).textContent || '',
            open: !!r.querySelector('button.open')}))""")
        assert [r["status"] for r in rows] == ["failed", "done", "skipped"]  # failures, results, then skipped
        assert rows[0]["kind"] == "input truncated" and rows[0]["reason"] == "TIFF tile 3 is missing" and rows[0]["open"]
        assert rows[1]["open"] and not rows[2]["open"]
        browser.open("about:blank")
        browser.open(report.as_uri() + "#view=grid")
        badges = browser.eval("[...document.querySelectorAll('.cell')].map(c => c.querySelector('.pic').textContent + '|' + c.querySelector('.badge').textContent)")
        assert badges == ["input truncated|failed: input truncated", "no preview|done", "PDF documents are not colorized|skipped"]
        assert "gray" in browser.eval("[...document.querySelectorAll('.cell .chip')].map(c => c.textContent)")


def test_read_list_forms_and_refusals(tmp_path: Path) -> None:
    plain = tmp_path / "rejected.txt"
    plain.write_bytes("\ufeff# saved by the sheet\r\nbox 1/scan 001.png\r\n\r\n./été/b.jpg\r\nbox 1//c.png\n".encode())
    assert read_list(plain) == {"box 1/scan 001.png", "été/b.jpg", "box 1/c.png"}
    listed = tmp_path / "rejected.json"
    listed.write_text(json.dumps(["line\nbreak.png", "# not a comment.png", "bad\udcff.png"]), "utf-8")
    assert read_list(listed) == {"line\nbreak.png", "# not a comment.png", "bad\udcff.png"}
    raw = tmp_path / "raw.txt"
    raw.write_bytes(b"bad\xff.png\n")  # a Linux name that is not UTF-8 matches the walk's name for it
    assert read_list(raw) == {"bad\udcff.png"}
    (tmp_path / "obj.json").write_text('{"rejected": ["a.png"]}')
    assert read_list(tmp_path / "obj.json") == {"a.png"}
    for name, text, message in (("up.txt", "a.png\n../secret.png\n", "line 2: '../secret.png' leaves INPUT"),
                                ("abs.txt", "/etc/passwd\n", "line 1: '/etc/passwd' is absolute"),
                                ("empty.txt", "# nothing\n\n", "names no file"),
                                ("bad.json", "[1]", "item 1: not a path"),
                                ("torn.json", "[\"a.png\"", "is not valid JSON")):
        (tmp_path / name).write_text(text)
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_list(tmp_path / name)


def test_only_from_refuses_what_it_cannot_use_and_plans_only_the_listed(tmp_path: Path) -> None:
    src, out = tmp_path / "scans", tmp_path / "out"
    src.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.full((20, 30), 100, np.uint8)).save(src / name)
    (src / "notes.txt").write_text("x")
    runner = CliRunner()

    def dry(*extra: str):
        return runner.invoke(app, ["dir", str(src), "--out", str(out), "--dry-run", "--json", *extra])

    missing = dry("--only-from", str(tmp_path / "nope.txt"))
    assert missing.exit_code == 2 and "--only-from" in missing.output and "no such file" in missing.output
    folder = dry("--only-from", str(tmp_path))
    assert folder.exit_code == 2 and "--only-from" in folder.output and "folder" in folder.output
    bad = tmp_path / "bad.txt"
    bad.write_text("../a.png\n")
    refused = dry("--only-from", str(bad))
    assert refused.exit_code == 2 and "--only-from" in refused.output and "leaves INPUT" in refused.output
    both = tmp_path / "ok.txt"
    both.write_text("b.png\nnot-there.png\n")
    assert dry("--only-from", str(both), "--retry-failed").exit_code == 2
    plan = dry("--only-from", str(both))
    assert plan.exit_code == 0, plan.output
    listed = json.loads(plan.stdout)
    assert listed["files"] == [{"action": "do", "input": "b.png", "why": "listed in --only-from"}]
