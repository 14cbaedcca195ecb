"""Bad input never costs another file: each broken scan, unreadable file, blocked output folder
or full disk fails alone, with a one-line reason in the log and the manifest, and the exit code
says so. Every bad file is made here, in the test, from real bytes."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from colorize_cli.cli import terminal
from colorize_cli.io.write import png as write_png
from colorize_cli.cli.app import app
from colorize_cli.manifest import FileRecord, ManifestWriter, read_manifest

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

# The CLI in a child process. One torch thread: the test machine's two cores are shared with
# other work, and two spinning torch threads on them cost ten times the run (pixels are the same).
DRIVER = """
import dataclasses, json, sys
from colorize_cli.run.executors import local
from colorize_cli.cli.app import main
real = local.default_engine_settings
local.default_engine_settings = lambda b, d: dataclasses.replace(real(b, d), torch_threads=1)
codes = []
for args in json.loads(sys.argv[1]):
    sys.argv = ["colorize", *args]
    print("=== run", len(codes), file=sys.stderr, flush=True)
    try:
        main()
    except SystemExit as e:
        codes.append(e.code)
print(json.dumps(codes))
"""


def texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.clip(120 + 70 * np.sin(x / 19.0 + y / 31.0 + seed) + rng.normal(0, 8, (h, w)), 0, 255).astype(np.uint8)


def encoded(fmt: str, h: int = 120, w: int = 160, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(texture(h, w, seed), "L").save(buf, fmt)
    return buf.getvalue()


def common(weights: Path) -> list[str]:
    return ["--weights", str(weights), "--render-size", "64", "--device", "cpu"]


def file_records(manifest: Path) -> dict[str, dict]:
    """The last record of each input (what a resume would see)."""
    return {r["input"]: r for r in read_manifest(manifest) if r["type"] == "file"}


def last_run_records(manifest: Path) -> list[dict]:
    runs: list[list[dict]] = []
    for r in read_manifest(manifest):
        if r["type"] == "run":
            runs.append([])
        elif r["type"] == "file":
            runs[-1].append(r)
    return runs[-1]


def assert_written(out: Path, rel: str, size: tuple[int, int]) -> None:
    with Image.open(out / rel) as im:
        im.load()  # decodes completely: not a partial file
        assert im.size == size and im.mode == "RGB", rel


def temps(out: Path) -> list[Path]:
    return sorted(out.rglob(".*.tmp"))


# ----------------------------------------------------------------------------- broken files


def test_each_bad_file_fails_alone_with_its_reason(tmp_path: Path, random_weights: Path, fast_cli, monkeypatch) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    good = {"a.png": (160, 120), "b.jpg": (160, 120), "box/c.tif": (90, 70), "box/d.webp": (100, 80)}
    for i, (rel, (w, h)) in enumerate(good.items()):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(texture(h, w, i), "L").save(src / rel)
    jpeg, png = encoded("JPEG"), encoded("PNG")
    (src / "empty.jpg").write_bytes(b"")
    (src / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (src / "cut.png").write_bytes(png[: len(png) // 2])
    (src / "letter.jpg").write_text("Dear archivist, this is not a photograph.\n")
    # A decompression bomb: 36 kB on disk, 300 Mpx (300 MB as 8-bit gray) once decoded.
    Image.new("1", (20000, 15000)).save(src / "bomb.png")
    assert (src / "bomb.png").stat().st_size < 100_000
    (src / "notes.txt").write_text("box 3: wedding photographs, 1952\n")
    (src / "vanishing.png").write_bytes(png)
    (src / "blocked").mkdir()
    (src / "blocked" / "e.png").write_bytes(png)
    out.mkdir()
    (out / "blocked").write_text("a file where the output folder must go")

    real_run = terminal.run

    def run_then_vanish(settings, *args, on_plan=lambda plan: None, **kw):
        """Delete one scan after the run has planned it, before it is read: it vanishes mid-run."""
        def plan_hook(plan):
            assert any(j.rel.as_posix() == "vanishing.png" for j, _ in plan.todo)
            (src / "vanishing.png").unlink()
            on_plan(plan)
        return real_run(settings, *args, on_plan=plan_hook, **kw)

    monkeypatch.setattr(terminal, "run", run_then_vanish)
    result = runner.invoke(app, ["dir", str(src), "--out", str(out), *common(random_weights), "--json"])
    assert result.exit_code == 1, result.output

    expected = {
        "empty.jpg": "empty file (0 bytes)",
        "cut.jpg": "truncated JPEG: image file is truncated",
        "cut.png": "truncated PNG: image file is truncated",
        "letter.jpg": "not an image (cannot identify image file)",
        "bomb.png": "image too large: 20000x15000 = 300 Mpx exceeds --max-pixels 250000000",
        "vanishing.png": "file vanished",
        "blocked/e.png": "output folder blocked: blocked is a file, not a folder",
    }
    records = file_records(out / "manifest.jsonl")
    assert {rel: r["reason"] for rel, r in records.items() if r["status"] == "failed"} == expected
    assert records["notes.txt"]["status"] == "skipped" and records["notes.txt"]["reason"] == "not an image"
    assert {rel for rel, r in records.items() if r["status"] == "done"} == set(good)
    for rel, size in good.items():
        assert_written(out, rel, size)
    assert not any((out / rel).exists() for rel in expected)
    assert (out / "blocked").read_text() == "a file where the output folder must go"  # left alone
    assert not temps(out)

    summary = json.loads(result.stdout)
    assert summary["counts"] == {"done": len(good), "failed": len(expected), "skipped": 1}
    assert summary["exit_code"] == 1
    # The log has one line per failure, with the same reason.
    for rel, reason in expected.items():
        assert f"failed {rel}  {reason}\n" in result.stderr, rel
    assert "7 file(s) failed; reasons are in" in result.stderr


def test_pixel_limit_refuses_and_can_be_raised(tmp_path: Path, random_weights: Path, fast_cli) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    src.mkdir()
    Image.fromarray(texture(300, 400, 1), "L").save(src / "large.png")
    Image.fromarray(texture(60, 80, 2), "L").save(src / "small.png")
    args = ["dir", str(src), "--out", str(out), *common(random_weights)]

    first = runner.invoke(app, [*args, "--max-pixels", "100000", "--json"])
    assert first.exit_code == 1, first.output
    records = file_records(out / "manifest.jsonl")
    assert records["large.png"]["reason"] == "image too large: 400x300 = 0.12 Mpx exceeds --max-pixels 100000"
    assert records["small.png"]["status"] == "done" and not (out / "large.png").exists()

    # A plain rerun does not retry a scan that failed for what it is ...
    plan = runner.invoke(app, [*args, "--dry-run", "--json"])
    why = {f["input"]: (f["action"], f["why"]) for f in json.loads(plan.stdout)["files"]}
    assert why == {"large.png": ("skip", "previously failed"), "small.png": ("skip", "already done")}
    # ... --retry-failed with a raised limit does, and only it.
    retry = runner.invoke(app, [*args, "--retry-failed", "--max-pixels", "200000", "--json"])
    assert retry.exit_code == 0, retry.output
    assert json.loads(retry.stdout)["counts"]["done"] == 1
    assert [r["input"] for r in last_run_records(out / "manifest.jsonl")] == ["large.png"]
    assert_written(out, "large.png", (400, 300))


# ----------------------------------------------------------------------------- permissions


def _without_dac_override() -> None:
    """Run the child as root without the capabilities that let root ignore file permissions
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so mode bits bind it as they bind any user. A
    non-root runner is bound already. (nobody cannot be used here: the Python lives under /root.)"""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_unreadable_scan_and_unwritable_output_folders(tmp_path: Path, random_weights: Path) -> None:
    src, out, sealed = tmp_path / "scans", tmp_path / "color", tmp_path / "sealed"
    (src / "ro").mkdir(parents=True)
    for i, rel in enumerate(("a.png", "b.png", "ro/x.png", "locked.png")):
        Image.fromarray(texture(60, 80, i), "L").save(src / rel)
    (src / "locked.png").chmod(0)
    (out / "ro").mkdir(parents=True)
    (out / "ro").chmod(0o555)  # a pre-created output sub-folder that may not be written
    sealed.mkdir()
    sealed.chmod(0o555)  # an output folder that may not be written at all
    runs = [["dir", str(src), "--out", str(out), *common(random_weights), "--json"],
            ["dir", str(src), "--out", str(sealed), *common(random_weights)]]
    try:
        proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(runs)], cwd=REPO, capture_output=True,
                              text=True, timeout=120, preexec_fn=_without_dac_override)
        first_err, second_err = proc.stderr.split("=== run 1\n")
    finally:
        (src / "locked.png").chmod(0o644)
        (out / "ro").chmod(0o755)
        sealed.chmod(0o755)
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert codes == [1, 2], proc.stderr

    records = file_records(out / "manifest.jsonl")
    assert records["locked.png"]["reason"] == "permission denied"
    assert records["ro/x.png"]["reason"] == "output folder not writable"
    assert {rel for rel, r in records.items() if r["status"] == "done"} == {"a.png", "b.png"}
    assert_written(out, "a.png", (80, 60))
    assert_written(out, "b.png", (80, 60))
    assert "failed locked.png  permission denied" in first_err
    assert "failed ro/x.png  output folder not writable" in first_err
    assert not temps(out)
    # The whole output folder unwritable: refused at once, with the path, nothing processed.
    assert f"colorize-dir: error: {sealed}/.colorize.lock: Permission denied" in second_err
    assert list(sealed.iterdir()) == []


# ----------------------------------------------------------------------------- full disk


@dataclasses.dataclass
class SmallDisk:
    """A folder on a file system of `size` bytes: a real tmpfs where this user may mount one,
    otherwise the output encoder refuses with ENOSPC once `size` bytes of outputs are written."""

    path: Path
    size: int
    real: bool

    def grow(self, size: int) -> None:
        self.size = size
        if self.real:
            subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch) -> Iterator[SmallDisk]:
    path = tmp_path / "disk"
    path.mkdir()
    size = 600 * 1024
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    disk = SmallDisk(path, size, mounted)
    print(f"\nfull-disk tests on {'a real tmpfs' if mounted else 'a simulated disk (mount not permitted)'}")
    if not mounted:
        written = [0]
        real_encode = write_png.encode_png

        def encode(fp, *a, **k):
            buf = io.BytesIO()
            real_encode(buf, *a, **k)
            if written[0] + len(buf.getvalue()) > disk.size:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written[0] += len(buf.getvalue())
            fp.write(buf.getvalue())

        monkeypatch.setattr(write_png, "encode_png", encode)
    try:
        yield disk
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=True)


def test_full_disk_stops_new_files_and_keeps_what_is_done(tmp_path: Path, small_disk: SmallDisk,
                                                          random_weights: Path, fast_cli) -> None:
    src, out = tmp_path / "scans", small_disk.path / "color"
    src.mkdir()
    rels = [f"s{i:02d}.png" for i in range(16)]
    for i, rel in enumerate(rels):  # noise compresses badly: each output is ~150 kB
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (200, 300), dtype=np.uint8), "L").save(src / rel)
    args = ["dir", str(src), "--out", str(out), *common(random_weights), "--batch-size", "1", "--json"]

    full = runner.invoke(app, args)
    assert full.exit_code == 1, full.output
    summary = json.loads(full.stdout)
    assert summary["disk_full"] is True and summary["not_started"] > 0
    assert "disk full: stopped starting new files; what is done is kept. Free space and rerun." in " ".join(full.stderr.split())
    records = file_records(out / "manifest.jsonl")
    done = {rel for rel, r in records.items() if r["status"] == "done"}
    failed = {rel: r["reason"] for rel, r in records.items() if r["status"] == "failed"}
    assert done and failed and set(failed.values()) == {"disk full"}
    if summary["manifest_error"] is None:  # the failures' records fitted on the full disk too
        assert len(records) + summary["not_started"] == len(rels)  # not started: no record at all
    else:  # a record that did not fit is lost; that file is simply redone next time
        assert summary["manifest_error"] == "cannot append to the manifest: disk full"
    for rel in done:
        assert_written(out, rel, (300, 200))
    assert not any((out / rel).exists() for rel in set(rels) - done)
    assert not temps(out)

    small_disk.grow(8 * 1024 * 1024)  # the archivist frees space and reruns the same command
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    redone = [r["input"] for r in last_run_records(out / "manifest.jsonl")]
    assert sorted(redone) == sorted(set(rels) - done)  # disk-full failures are retried, done ones are not
    for rel in rels:
        assert_written(out, rel, (300, 200))


def test_manifest_on_a_full_disk_never_keeps_half_a_record(small_disk: SmallDisk, monkeypatch) -> None:
    path = small_disk.path / "manifest.jsonl"
    if not small_disk.real:  # the simulated disk: the file system takes part of a line, then refuses
        from colorize_cli.manifest import store as mf

        real_write_all = mf._write_all
        budget = [small_disk.size]

        def write_all(fd: int, data: bytes) -> None:
            if len(data) > budget[0]:
                real_write_all(fd, data[: budget[0]])
                budget[0] = 0
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            budget[0] -= len(data)
            real_write_all(fd, data)

        monkeypatch.setattr(mf, "_write_all", write_all)
    record = lambda i: FileRecord(input=f"box/scan{i:05d}.tif", status="done", notes=["x" * 200])  # noqa: E731
    written = 0
    with ManifestWriter(path) as writer:
        with pytest.raises(OSError) as err:
            while True:
                writer.write(record(written))
                written += 1
        assert err.value.errno == errno.ENOSPC and written > 100
        bad: list[int] = []
        assert [r["input"] for r in read_manifest(path, bad)] == [record(i).input for i in range(written)]
        assert bad == [] and path.read_bytes().endswith(b"}\n")
        small_disk.grow(2 * small_disk.size)
        if not small_disk.real:
            budget[0] = small_disk.size
        writer.write(record(written))  # space again: the next record lands whole, on its own line
    assert [r["input"] for r in read_manifest(path)][-2:] == [record(written - 1).input, record(written).input]
