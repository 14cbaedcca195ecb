"""Integrity, round three (issue 41): option values checked before anything is touched, failures
that stay failed keep exit 1, signals at the last moments and during torch's import, one writer
per output tree, a hostile manifest and report, planted symlinks, many-page TIFFs, undecodable
names and inputs swapped after the walk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from colorize_cli import api
from colorize_cli.cli.app import app
from colorize_cli.failures import FileFailure, Kind, kind_of_legacy_reason
from colorize_cli.io import fsutil
from colorize_cli.io.scanfile import ImageError, read_scan
from colorize_cli.manifest import FileRecord, LockedError, ManifestWriter, ResumeIndex, RunLock, read_manifest, run_header
from colorize_cli.manifest import resume as resume_module
from colorize_cli.manifest.records import end_record
from colorize_cli.report.sheet import write_report
from colorize_cli.settings import ColorSettings, RunSettings, RuntimeSettings

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
from test_integrity import command, scans  # noqa: E402 - the same small scans and command line

ENV = {**os.environ, "PYTHONPATH": str(REPO)}




def file_records(manifest: Path) -> dict[str, dict]:
    return {r["input"]: r for r in read_manifest(manifest) if r["type"] == "file"}


# ----------------------------------------------------------------------------- U1, U2, U4: options

BAD_OPTIONS = [
    (["--saturation", "-1"], "--saturation -1.0: accepts a number from 0 to 10"),
    (["--saturation", "nan"], "--saturation nan: accepts"),
    (["--batch-size", "0"], "--batch-size 0: accepts 1 to 4096"),
    (["--render-size", "-5"], "--render-size -5: accepts 0 (the model's default) or 32 to 16384 px"),
    (["--quality", "500"], "--quality 500: accepts 1 to 100"),
    (["--max-pixels", "0"], "--max-pixels 0: accepts a pixel count of 1 or more"),
    (["--tile-size", "8"], "--tile-size 8: accepts 32 to 16384 px"),
    (["--tile-overlap", "-1"], "--tile-overlap -1: accepts 0 or more px"),
    (["--format", "gif"], "unknown output format 'gif'"),
    (["--device", "tpu"], "--device must be auto, cpu, cuda, cuda:N or mps, not 'tpu'"),
    (["--engine", "ray", "--cpus-per-worker", "0"], "--cpus-per-worker 0.0: accepts a number above 0"),
    (["--engine", "ray", "--workers", "0"], "--workers 0: need 1 <= N <= M"),
]

CHECK_OPTIONS = """
import json, sys, time
sys.modules["torch"] = None  # any import of torch fails loudly: every check must come before it
from typer.testing import CliRunner
from colorize_cli.cli.app import app
cases = json.loads(sys.argv[1])
out = []
for args in cases:
    t0 = time.perf_counter()
    r = CliRunner().invoke(app, args)
    out.append({"code": r.exit_code, "stderr": r.stderr, "seconds": time.perf_counter() - t0})
print(json.dumps(out))
"""


def test_bad_option_values_are_usage_errors_before_torch_and_before_any_file(tmp_path: Path) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    scans(src, 1)
    base = ["dir", str(src), "--out", str(out)]
    cases = [base + extra for extra, _ in BAD_OPTIONS] + [["dir", str(tmp_path / "missing"), "--out", str(out)]]
    proc = subprocess.run([sys.executable, "-c", CHECK_OPTIONS, json.dumps(cases)], capture_output=True, text=True,
                          timeout=120, env=ENV, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    for (extra, message), got in zip(BAD_OPTIONS, results):
        assert got["code"] == 2, (extra, got)
        assert message in got["stderr"], (extra, got["stderr"])
        assert "Traceback" not in got["stderr"]
        assert got["seconds"] < 1.0, (extra, got["seconds"])  # torch never loaded (it is blocked here)
    missing = results[-1]
    assert missing["code"] == 2 and f"input folder {tmp_path / 'missing'} does not exist" in missing["stderr"]
    assert not out.exists()  # nothing was touched: no folder, no lock, no manifest


def test_internal_failures_are_retried_and_a_crashing_file_is_not(tmp_path: Path) -> None:
    scan = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(scan)
    st = scan.stat()

    def decide(kind: str | None, reason: str) -> tuple[str, str]:
        index = ResumeIndex([FileRecord(input="a.png", status="failed", reason=reason, kind=kind, input_size=st.st_size,
                                        input_mtime=st.st_mtime)])
        action, why = index.decide("a.png", scan, "k", tmp_path / "out.png")
        return action.value, str(why)

    # internal: the program's fault (a bug, a bad option value of an older version): a plain rerun retries it
    assert decide("internal", "ValueError: saturation must be >= 0") == ("do", "previously failed for a reason outside the scan")
    # crashed: the file killed its worker every time; retried only with --retry-failed, never forever
    assert decide("crashed", "worker crashed while processing this file") == ("skip", "previously failed")
    assert kind_of_legacy_reason("worker crashed while processing this file") is Kind.CRASHED
    assert decide(None, "worker crashed while processing this file") == ("skip", "previously failed")


# ----------------------------------------------------------------------------- U3 and the empty run


def test_files_still_failed_keep_exit_1_and_skips_are_told(tmp_path: Path, random_weights: Path, fast_cli) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    scans(src, 1)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (src / "doc.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    first = runner.invoke(app, command(src, out, random_weights))
    assert first.exit_code == 1, first.output
    assert json.loads(first.stdout)["counts"] == {"done": 1, "failed": 1, "skipped": 1}
    assert "skipped 1: PDF documents are not colorized" in first.stderr
    again = runner.invoke(app, command(src, out, random_weights))
    assert again.exit_code == 1, again.output  # broken.png is still failed: not "all done"
    summary = json.loads(again.stdout)
    assert summary["counts"]["failed"] == 0 and summary["previously_failed"] == 1 and summary["exit_code"] == 1
    assert summary["skip_reasons"] == {"already done": 1, "previously failed": 1, "PDF documents are not colorized": 1}
    assert "1 file(s) still failed from an earlier run" in " ".join(again.stderr.split())
    assert file_records(out / "manifest.jsonl")["s0.png"]["status"] == "done"  # nothing else lost

    empty, only_docs = tmp_path / "empty", tmp_path / "docs"
    empty.mkdir()
    only_docs.mkdir()
    (only_docs / "a.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    for folder, skipped in ((empty, ""), (only_docs, "skipped 1: PDF documents are not colorized")):
        result = runner.invoke(app, command(folder, tmp_path / f"out-{folder.name}", random_weights))
        assert result.exit_code == 0, result.output
        assert f"nothing to do: no images found in {folder}" in " ".join(result.stderr.split())
        assert skipped in result.stderr


# ----------------------------------------------------------------------------- A, B: signals

AFTER_LAST = """
import os, signal, sys
from colorize_cli.cli import progress, terminal
real = terminal.summary_table
def table(summary):
    os.kill(os.getpid(), signal.SIGTERM)  # while the summary is printed: the work is done
    return real(summary)
terminal.summary_table = table
from colorize_cli.cli.app import dir_main
sys.argv = ["colorize-dir", *sys.argv[1:]]
dir_main()
"""


def test_a_signal_after_the_last_file_leaves_the_true_result(tmp_path: Path, random_weights: Path) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    rels = scans(src)
    args = command(src, out, random_weights)[1:]
    proc = subprocess.run([sys.executable, "-c", AFTER_LAST, *args], capture_output=True, text=True, timeout=120, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert "SIGTERM came after the last file had started; the run finished, its result stands (exit 0)" in proc.stderr
    assert json.loads(proc.stdout)["counts"]["done"] == len(rels)
    # A signal at any moment after "[2/2]" (the end record, the lock, the summary, the exit).
    for delay in (0.0, 0.25):
        child = subprocess.Popen([sys.executable, "-c", "from colorize_cli.cli.app import dir_main; dir_main()", *args, "--overwrite"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        assert child.stderr is not None
        for line in child.stderr:
            if line.startswith(f"[{len(rels)}/{len(rels)}]"):
                time.sleep(delay)
                child.send_signal(signal.SIGTERM)
                break
        rest = child.stderr.read()
        assert child.wait(timeout=60) == 0, (delay, rest)
        assert "Traceback" not in rest
        assert all(r["status"] == "done" for r in file_records(out / "manifest.jsonl").values())
        child.stdout.close()
        child.stderr.close()
    assert not list(out.glob(".colorize*.lock"))


DURING_IMPORT = """
import importlib.abc, os, signal, sys, time
SIG = signal.SIGINT if sys.argv[1] == "INT" else signal.SIGTERM
class Interrupt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch.nn":  # deep inside torch/__init__, where its C++ extension is half set up
            try:
                os.kill(os.getpid(), SIG)
                time.sleep(0.5)
            except BaseException as err:  # what torch's own import code would have to survive
                sys.stderr.write(f"raised into torch's import: {type(err).__name__}\\n")
                raise
        return None
sys.meta_path.insert(0, Interrupt())
from colorize_cli.cli.app import dir_main
sys.argv = ["colorize-dir", *sys.argv[2:]]
dir_main()
"""


@pytest.mark.parametrize("sig", ["INT", "TERM"])
def test_a_signal_while_torch_imports_exits_130_with_its_message(sig: str, tmp_path: Path, random_weights: Path) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    scans(src, 1)
    proc = subprocess.run([sys.executable, "-c", DURING_IMPORT, sig, *command(src, out, random_weights)[1:]],
                          capture_output=True, text=True, timeout=60, env=ENV)
    assert proc.returncode == 130, proc.stderr
    assert f"colorize-dir: interrupted (SIG{sig}) before any file was started; rerun the same command to begin" in proc.stderr
    assert "Traceback" not in proc.stderr and "raised into torch's import" not in proc.stderr
    assert not out.exists()


# ----------------------------------------------------------------------------- C: one writer per output tree

HOLD = """
import sys
from colorize_cli.manifest import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""


def test_nested_output_folders_have_one_writer(tmp_path: Path, random_weights: Path, fast_cli) -> None:
    src, top = tmp_path / "scans", tmp_path / "N" / "A"
    scans(src, 1)
    for held, wanted in ((top, top / "sub"), (top / "sub", top)):
        child = subprocess.Popen([sys.executable, "-c", HOLD, str(held)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True, env=ENV)
        try:
            assert child.stdout.readline().strip() == "locked"
            with pytest.raises(LockedError, match="one writer per output tree"):
                RunLock(wanted).acquire()
            refused = runner.invoke(app, command(src, wanted, random_weights))
            assert refused.exit_code == 2, refused.output
            assert f"pid {child.pid}" in refused.stderr and "one writer per output tree" in refused.stderr
            assert not (wanted / "manifest.jsonl").exists() and not (wanted / ".colorize.lock").exists()
        finally:
            child.stdin.close()
            assert child.wait(timeout=10) == 0
            child.stdout.close()
    with RunLock(top), RunLock(tmp_path / "N" / "B"):  # siblings are separate trees
        pass


# ----------------------------------------------------------------------------- D, E: the report


def test_a_hand_edited_manifest_and_hostile_links_never_crash_or_escape_the_report(tmp_path: Path, caplog) -> None:
    out, scans_dir = tmp_path / "color", tmp_path / "scans"
    out.mkdir()
    scans_dir.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (out / "x.png").symlink_to(outside)
    manifest = out / "manifest.jsonl"
    header = run_header("r1", "m", "0" * 64, {}, [], started="2026-01-01T00:00:00Z")
    header["input_root"] = "/etc"
    with ManifestWriter(manifest) as mw:
        mw.write(header)
        mw.write(FileRecord(input="passwd", status="done", output="x.png", run_id="r1",
                            review={"colorfulness": 10**400, "flat_chroma": 2.0}))
        mw.write(FileRecord(input="ok.png", status="failed", reason="corrupt", kind="input corrupt", run_id="r1"))
        mw.write(end_record("r1", {"done": 10**400, "failed": 1, "skipped": 0}, False, finished="2026-01-01T00:01:00"))
    page = write_report(out, manifest)  # no TypeError (naive time), no OverflowError (10**400)
    data = json.loads(page.read_text("utf-8").split('id="report-data">', 1)[1].split("</script>", 1)[0])
    cols = data["cols"]
    rows = {r[cols.index("rel")]: r for r in data["rows"]}
    assert set(rows) == {"passwd", "ok.png"}  # nothing else lost
    assert data["originals"] is None  # /etc/passwd is not the file the manifest describes
    assert rows["passwd"][cols.index("output")] == ""  # a symlink leading out of OUT is not linked
    assert rows["passwd"][cols.index("colorfulness")] is None
    assert "originals not linked" in caplog.text and "leads outside" in caplog.text
    cli = runner.invoke(app, ["report", str(out)])
    assert cli.exit_code == 0, cli.output
    # The folder a user names is linked, as long as its originals stay inside it.
    assert write_report(out, manifest, input_root=scans_dir) and json.loads(
        page.read_text("utf-8").split('id="report-data">', 1)[1].split("</script>", 1)[0])["originals"] == "../scans/"


# ----------------------------------------------------------------------------- F: planted output symlink


def test_a_symlink_planted_under_an_output_name_is_not_followed(tmp_path: Path, random_weights: Path, fast_cli,
                                                                  monkeypatch) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    scans(src, 1)
    assert runner.invoke(app, command(src, out, random_weights)).exit_code == 0
    planted = out / "s0.png"
    decoy = tmp_path / "decoy.png"
    decoy.write_bytes(planted.read_bytes())  # same size, other mtime: the old code hashed it
    decoy_bytes = decoy.read_bytes()
    planted.unlink()
    planted.symlink_to(decoy)
    hashed: list[str] = []
    real_hash = resume_module.sha256_file
    monkeypatch.setattr(resume_module, "sha256_file", lambda p, *a, **k: hashed.append(str(p)) or real_hash(p, *a, **k))
    plan = runner.invoke(app, [*command(src, out, random_weights), "--dry-run"])
    assert {f["input"]: f["why"] for f in json.loads(plan.stdout)["files"]} == {"s0.png": "output changed"}
    assert str(planted) not in hashed
    rerun = runner.invoke(app, command(src, out, random_weights))
    assert rerun.exit_code == 0 and json.loads(rerun.stdout)["counts"]["done"] == 1
    assert not planted.is_symlink() and planted.is_file()
    assert decoy.read_bytes() == decoy_bytes  # the link was replaced, not written through


# ----------------------------------------------------------------------------- G: many pages


def test_many_page_tiffs_are_bounded(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((8, 8), i % 256, np.uint8), "L") for i in range(500)]
    many = tmp_path / "many.tif"
    frames[0].save(many, save_all=True, append_images=frames[1:])
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="image too large: 500 pages, more than the 100 pages") as err:
        read_scan(many)
    assert err.value.kind is Kind.TOO_LARGE and time.perf_counter() - t0 < 10
    three = tmp_path / "three.tif"
    pages = [Image.fromarray(np.zeros((100, 100), np.uint8), "L") for _ in range(3)]
    pages[0].save(three, save_all=True, append_images=pages[1:])
    assert len(read_scan(three, max_pixels=30_000).pages) == 3
    with pytest.raises(ImageError, match=r"image too large: 3 pages, .* by page 3, exceed --max-pixels 25000"):
        read_scan(three, max_pixels=25_000)  # each page fits; together they do not


# ----------------------------------------------------------------------------- H: undecodable names


def test_a_jpeg_whose_name_is_not_utf8_is_colorized_and_recorded_faithfully(tmp_path: Path, random_weights: Path, fast_cli) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    src.mkdir()
    raw = b"nonutf8_\xff\xfe.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60), dtype=np.uint8), "L").save(
        os.path.join(os.fsencode(src), raw), "JPEG")
    first = runner.invoke(app, command(src, out, random_weights))
    assert first.exit_code == 0, first.output
    name = os.fsdecode(raw)
    rec = file_records(out / "manifest.jsonl")[name]
    assert rec["status"] == "done" and os.fsencode(rec["input"]) == raw and os.fsencode(rec["output"]) == raw
    assert b"nonutf8_\\xff\\xfe.jpg</stRef:filePath>" in (out / name).read_bytes()  # the XMP names it, escaped
    again = runner.invoke(app, command(src, out, random_weights))
    assert again.exit_code == 0 and json.loads(again.stdout)["counts"] == {"done": 0, "failed": 0, "skipped": 1}


# ----------------------------------------------------------------------------- I: inputs swapped after the walk


def test_inputs_swapped_after_the_walk_are_not_read_blindly(tmp_path: Path, random_weights: Path) -> None:
    src, out, elsewhere = tmp_path / "scans", tmp_path / "color", tmp_path / "elsewhere.png"
    rels = scans(src, 4)
    Image.fromarray(np.zeros((40, 60), np.uint8), "L").save(elsewhere)

    def swap(_plan) -> None:  # after the walk saw four regular files
        (src / "s0.png").unlink()
        os.mkfifo(src / "s0.png")  # would hang a blocking open forever
        (src / "s1.png").unlink()
        (src / "s1.png").symlink_to("/dev/zero")  # endless
        (src / "s2.png").unlink()
        (src / "s2.png").symlink_to(elsewhere)  # outside INPUT

    settings = RunSettings(input_root=src, out_root=out, weights=random_weights, color=ColorSettings(render_size=64),
                           runtime=RuntimeSettings(device="cpu"), quiet=True)
    model = api.load_model(random_weights, "cpu")
    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(result=api.run(settings, model, on_plan=swap)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "a swapped input hung the run"
    records = file_records(out / "manifest.jsonl")
    assert records["s0.png"]["reason"] == "not a regular file (a FIFO)" and records["s0.png"]["kind"] == "unsupported"
    assert records["s1.png"]["reason"].startswith("symlink outside input root -> /dev/zero")
    assert records["s2.png"]["reason"] == f"symlink outside input root -> {elsewhere}"
    assert records["s3.png"]["status"] == "done" and box["result"].exit_code == 1
    assert len(records) == len(rels)
    # With links allowed out of INPUT, a device is still no regular file; with --no-follow-symlinks no link is opened.
    with pytest.raises(FileFailure, match=r"not a regular file \(a device\)"):
        fsutil.read_input(src / "s1.png", follow=True, inside=None)
    with pytest.raises(FileFailure, match="symlink \\(not followed\\)"):
        fsutil.read_input(src / "s2.png", follow=False)
    with pytest.raises(FileFailure, match="image too large: the file holds"):
        fsutil.read_input(src / "s3.png", max_bytes=100)  # refused before a byte is read


def test_a_gif_that_declares_a_bomb_canvas_fails_as_too_large_and_alone(tmp_path: Path) -> None:
    """Pillow refuses a GIF whose frame declares 65535 x 10751 px already when opening it; that is a
    scan too large for the tool, not the program's fault (it was kind `internal`)."""
    import io
    import json as json_

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    buf = io.BytesIO()
    Image.new("L", (1, 1), 7).save(buf, "GIF")
    gif = bytearray(buf.getvalue())
    at = gif.index(b"\x2c\x00\x00\x00\x00")  # the image descriptor: left, top, then width and height
    gif[at + 5 : at + 9] = b"\xff\xff\xff\x29"  # a frame of 65535 x 10751 (as Pillow's own decompression_bomb.gif)
    (src / "bomb.gif").write_bytes(bytes(gif))
    Image.fromarray(np.full((40, 60), 120, np.uint8)).save(src / "good.png")
    before = (src / "bomb.gif").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "colorize_cli", "dir", str(src), "--out", str(out), "--device", "cpu", "-q", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    summary = json_.loads(proc.stdout)
    assert summary["counts"] == {"done": 1, "failed": 1, "skipped": 0}
    (failure,) = summary["failures"]
    assert failure["input"] == "bomb.gif" and failure["kind"] == "too large" and failure["reason"].startswith("image too large")
    assert (out / "good.png").is_file() and not any(out.glob("bomb*"))
    assert (src / "bomb.gif").read_bytes() == before
