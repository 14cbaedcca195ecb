"""Integrity under faults other than a full disk: two runs on one folder, a damaged or hostile
manifest, signals at start-up and after the work, an input rewritten while it is read, and the
true reason (and kind) of files Pillow cannot open."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from colorize_cli.io import fsutil
from colorize_cli.cli.app import app
from colorize_cli.run.session import remove_stale_temps
from colorize_cli.failures import Kind
from colorize_cli.io.scanfile import ImageError, read_scan
from colorize_cli.manifest import (
    FileRecord,
    LockedError,
    ResumeIndex,
    RunLock,
    live_owners,
    merge_manifests,
    read_manifest,
)

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def scans(root: Path, n: int = 2) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    rels = [f"s{i}.png" for i in range(n)]
    for i, rel in enumerate(rels):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 60), dtype=np.uint8), "L").save(root / rel)
    return rels


def command(src: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return ["dir", str(src), "--out", str(out), "--weights", str(weights), "--render-size", "64",
            "--device", "cpu", "--json", *extra]


def file_records(manifest: Path) -> dict[str, dict]:
    return {r["input"]: r for r in read_manifest(manifest) if r["type"] == "file"}


# ----------------------------------------------------------------------------- one writer per folder


HOLD = """
import sys
from colorize_cli.manifest import RunLock
shard = tuple(int(x) for x in sys.argv[2].split("/")) if sys.argv[2] != "-" else None
lock = RunLock(sys.argv[1], shard, argv=["holder"]).acquire()
print("locked", flush=True)
sys.stdin.read()  # held until the test closes our stdin
lock.release()
"""


def hold(out: Path, shard: str) -> subprocess.Popen:
    """Another process holding the folder as an unsharded run ("-") or a shard ("K/N")."""
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(out), shard], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdout.readline().strip() == "locked"
    return child


def release(child: subprocess.Popen) -> None:
    child.stdin.close()
    assert child.wait(timeout=10) == 0
    child.stdout.close()


def test_an_unsharded_run_and_a_shard_never_share_a_folder(tmp_path: Path, random_weights: Path, fast_cli) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    scans(src)
    holder = hold(out, "-")
    try:
        refused = runner.invoke(app, command(src, out, random_weights, "--shard", "1/2"))
        assert refused.exit_code == 2, refused.output
        assert (f"colorize-dir: error: another colorize-dir run (pid {holder.pid} on host {socket.gethostname()}, "
                "started 20") in refused.stderr
        assert ("is using this output folder (an unsharded run and shards cannot share a folder); "
                f"if it is gone, delete {out / '.colorize.lock'}") in refused.stderr
    finally:
        release(holder)
    holder = hold(out, "2/2")
    try:
        refused = runner.invoke(app, command(src, out, random_weights))
        assert refused.exit_code == 2, refused.output
        assert f"(pid {holder.pid} on host {socket.gethostname()}, started 20" in refused.stderr
        assert "is using this output folder (shard 2-of-2) (an unsharded run and shards cannot share a folder)" in refused.stderr
        other_n = runner.invoke(app, command(src, out, random_weights, "--shard", "1/3"))
        assert other_n.exit_code == 2 and "(shards of one folder must all be K/2)" in other_n.stderr
        # The same N: shards run side by side, the shared-file-system case sharding exists for.
        sibling = runner.invoke(app, command(src, out, random_weights, "--shard", "1/2"))
        assert sibling.exit_code == 0, sibling.output
        assert json.loads(sibling.stdout)["counts"]["done"] >= 1
    finally:
        release(holder)
    assert not list(out.glob(".colorize*.lock"))  # each run left the folder as it found it
    assert not list(read_manifest(out / "manifest.jsonl"))  # the refused runs wrote nothing


def test_runs_started_together_leave_one_kind_of_holder(tmp_path: Path) -> None:
    """Many runs start at once (threads here; flock is per open file, so they contend as
    processes would): whoever wins, the holders are one unsharded run or shards of one N."""
    wanted = [None, (1, 2), (2, 2), (1, 3), None, (2, 3), (3, 3), (1, 2)]
    for _ in range(5):
        barrier = threading.Barrier(len(wanted))
        held: list[RunLock] = []
        refused: list[str] = []

        def start(shard):
            lock = RunLock(tmp_path, shard)
            barrier.wait()
            try:
                held.append(lock.acquire())
            except LockedError as err:
                refused.append(str(err))

        threads = [threading.Thread(target=start, args=(s,)) for s in wanted]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        shards = [lock.shard for lock in held]
        assert shards == [None] or (None not in shards and len({s[1] for s in shards}) == 1), shards
        assert len(set(shards)) == len(shards)  # never the same shard twice
        assert len(held) + len(refused) == len(wanted)
        assert all(r.startswith("another colorize-dir run (pid ") for r in refused)
        for lock in held:
            lock.release()
        assert not list(tmp_path.glob(".colorize*.lock"))


def test_stale_temp_sweep_spares_a_live_holders_files(tmp_path: Path) -> None:
    out = tmp_path / "color"
    holder = hold(out, "2/2")
    try:
        with RunLock(out, (1, 2)):
            live = json.loads((out / ".colorize.2-of-2.lock").read_text())["owner"]
            assert live_owners(out) == {live, fsutil.owner_tag()}
            dead = next(f"{i:04x}" for i in range(1 << 16) if f"{i:04x}" not in (live, fsutil.owner_tag()))
            theirs = out / f".a.png.{live}0001.tmp"
            mine = out / f".b.png.{fsutil.owner_tag()}0002.tmp"
            gone = out / f".c.png.{dead}0003.tmp"
            for p in (theirs, mine, gone):
                p.write_bytes(b"half an output")
            swept = remove_stale_temps([out / "a.png", out / "b.png", out / "c.png"], keep_owners=live_owners(out))
            assert swept == 1 and theirs.exists() and mine.exists() and not gone.exists()
    finally:
        release(holder)
    # Once the other shard is gone its temp file is provably stale too.
    assert remove_stale_temps([out / "a.png"], keep_owners=live_owners(out)) == 1 and not theirs.exists()


# ----------------------------------------------------------------------------- the manifest is data


def test_records_of_wrong_types_or_escaping_paths_are_skipped_with_their_line(tmp_path: Path, caplog) -> None:
    path = tmp_path / "manifest.jsonl"
    good = FileRecord(input="ok.png", status="done", output="ok.png").to_json()
    lines = [
        good,
        {**good, "input": ["a.jpg"]},  # 2
        {**good, "input": "b.png", "status": "failed", "reason": 5},  # 3
        {**good, "input": "c.png", "input_size": "12"},  # 4
        {**good, "input": "d.png", "width": True},  # 5
        {**good, "input": "../outside.png"},  # 6
        {**good, "input": "/etc/passwd"},  # 7
        {**good, "input": "e.png", "output": "../../evil.png"},  # 8
        {**good, "input": "f.png", "status": "failed", "kind": "gremlins"},  # 9
        {"type": "run", "run_id": 7},  # 10
        {"type": "end", "run_id": "r", "counts": [], "interrupted": False},  # 11
        {**good, "input": "g.png", "notes": ["fine", 3]},  # 12
        {"type": "future", "anything": [1]},  # a newer version's record type: passed through
        {**good, "input": "box/h.png", "output": "box/h.png"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    bad: list[int] = []
    with caplog.at_level(logging.WARNING, logger="colorize_cli.manifest"):
        kept = list(read_manifest(path, bad))
    assert bad == list(range(2, 13))
    assert [r.get("input") for r in kept] == ["ok.png", None, "box/h.png"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 11  # one line each
    assert f"{path}: line 2 skipped: field 'input' must be a string, not a list" in warnings
    assert f"{path}: line 3 skipped: field 'reason' must be a string or null, not a number" in warnings
    assert f"{path}: line 6 skipped: input path '../outside.png' leaves its folder (..)" in warnings
    assert f"{path}: line 7 skipped: input path '/etc/passwd' is absolute" in warnings
    assert f"{path}: line 8 skipped: output path '../../evil.png' leaves its folder (..)" in warnings

    # Nothing downstream ever sees the rejected records: resume, merge.
    assert {r.input for r in ResumeIndex.load(path).records()} == {"ok.png", "box/h.png"}
    summary = merge_manifests([path], tmp_path / "merged.jsonl")
    assert summary.files == 2 and summary.bad_lines == 11


def test_a_damaged_manifest_never_stops_a_run(tmp_path: Path, random_weights: Path, fast_cli, caplog) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    rels = scans(src)
    first = runner.invoke(app, command(src, out, random_weights))
    assert first.exit_code == 0, first.output
    manifest = out / "manifest.jsonl"
    with open(manifest, "a") as f:
        f.write(json.dumps({"type": "file", "input": ["s0.png"], "status": "done"}) + "\n")
        f.write(json.dumps({"type": "file", "input": "s1.png", "status": "failed", "reason": 5}) + "\n")
        f.write(json.dumps({"type": "file", "input": "../../etc/hosts", "status": "done", "output": "/etc/hosts"}) + "\n")
    lines = len(manifest.read_text().splitlines())
    with caplog.at_level(logging.WARNING, logger="colorize_cli.manifest"):
        again = runner.invoke(app, command(src, out, random_weights))
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["counts"] == {"done": 0, "failed": 0, "skipped": len(rels)}
    warned = [r.getMessage() for r in caplog.records]
    for number in (lines - 2, lines - 1, lines):  # once each, though the manifest is read by plan and report
        assert sum(f"manifest.jsonl: line {number} skipped:" in w for w in warned) == 1, warned


# ----------------------------------------------------------------------------- signals


DRIVER = """
import dataclasses, json, os, signal, sys, time
from colorize_cli.inference import colorizer
from colorize_cli.run.executors import local
from colorize_cli.cli.app import main
real = local.default_engine_settings
local.default_engine_settings = lambda b, d: dataclasses.replace(real(b, d), torch_threads=1)
when = sys.argv[1]
from colorize_cli.run.session import RunSession
load = colorizer.load_model
def load_then_signal(*a, **k):
    if when == "load":  # a signal while the model loads (a real one, through the real handler)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    return load(*a, **k)
colorizer.load_model = load_then_signal
finish = RunSession.run
def finish_then_signal(self):
    result = finish(self)
    if when == "after":  # Ctrl-C just after the end record: the work's result stands
        os.kill(os.getpid(), signal.SIGINT)
    return result
RunSession.run = finish_then_signal
sys.argv = ["colorize", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("when", ["load", "after"])
def test_signals_tell_the_truth(when: str, tmp_path: Path, random_weights: Path) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    rels = scans(src)
    proc = subprocess.run([sys.executable, "-c", DRIVER, when, *command(src, out, random_weights)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    if when == "load":
        assert proc.returncode == 130, proc.stderr
        assert "colorize-dir: interrupted (SIGTERM) before any file was started; rerun the same command" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not out.exists() or not list(out.glob(".colorize*.lock"))
    else:
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        assert summary["counts"]["done"] == len(rels) and summary["interrupted"] is False
        assert "interrupted" not in proc.stderr
        assert not list(out.glob(".colorize*.lock"))


# ----------------------------------------------------------------------------- one read of each input


def rewrite_while_read(monkeypatch, target: Path, times: int) -> list[bytes]:
    """The first `times` reads of `target` see it rewritten (same size, new bytes, new mtime)
    right after they took its stat: the copy-in-progress a scanner station makes."""
    real_fstat = fsutil.os.fstat
    versions: list[bytes] = []
    calls = [0]

    def fstat(fd):
        st = real_fstat(fd)
        try:
            same = os.path.samefile(f"/proc/self/fd/{fd}", target)
        except OSError:
            same = False
        calls[0] += same
        if same and calls[0] % 2 == 1 and len(versions) < times:  # read_input's first fstat: "before"
            gray = np.full((40, 60), 30 + 60 * len(versions), np.uint8)
            buf = io.BytesIO()
            Image.fromarray(gray, "L").save(buf, "PNG")
            data = buf.getvalue()
            versions.append(data)
            with open(target, "r+b") as f:
                f.truncate(0)
                f.write(data)
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9 * len(versions)))
        return st

    monkeypatch.setattr(fsutil.os, "fstat", fstat)
    return versions


@pytest.mark.parametrize("rewrites", [1, 2])
def test_an_input_rewritten_while_read_is_described_by_what_was_colorized(
        rewrites: int, tmp_path: Path, random_weights: Path, fast_cli, monkeypatch) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    src.mkdir()
    target = src / "scan.png"
    Image.fromarray(np.full((40, 60), 220, np.uint8), "L").save(target)
    versions = rewrite_while_read(monkeypatch, target, rewrites)
    result = runner.invoke(app, command(src, out, random_weights))
    monkeypatch.undo()
    assert len(versions) == rewrites
    rec = file_records(out / "manifest.jsonl")["scan.png"]
    st = target.stat()
    if rewrites == 1:  # changed once: read again, and the record describes the bytes colorized
        assert result.exit_code == 0, result.output
        assert rec["status"] == "done"
        assert rec["input_sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
        assert (rec["input_size"], rec["input_mtime"]) == (st.st_size, st.st_mtime)
        with Image.open(out / "scan.png") as im:  # the new (dark) picture, not the old (light) one
            assert np.asarray(im.convert("L")).mean() < 100
    else:  # still changing on the second read: fails, and a later run retries it by itself
        assert result.exit_code == 1, result.output
        assert (rec["status"], rec["reason"], rec["kind"]) == ("failed", "input changed while being read", "input changed")
        assert not (out / "scan.png").exists()
        again = runner.invoke(app, command(src, out, random_weights))
        assert again.exit_code == 0 and file_records(out / "manifest.jsonl")["scan.png"]["status"] == "done"


def test_each_input_is_read_once(tmp_path: Path, random_weights: Path, fast_cli, monkeypatch) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    rels = scans(src, 3)
    from colorize_cli.run import processor as engine

    reads: list[str] = []
    hashed: list[Path] = []
    real_read, real_hash = engine.read_input, engine.sha256_file
    monkeypatch.setattr(engine, "read_input", lambda p, **k: reads.append(Path(p).name) or real_read(p, **k))
    monkeypatch.setattr(engine, "sha256_file", lambda p, *a: hashed.append(Path(p)) or real_hash(p, *a))
    result = runner.invoke(app, command(src, out, random_weights))
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    assert sorted(reads) == sorted(rels)  # one stat + read + hash per input...
    assert all(p.parent == out for p in hashed) and len(hashed) == len(rels)  # ...and no second pass to hash it
    for rel, rec in file_records(out / "manifest.jsonl").items():
        assert rec["input_sha256"] == hashlib.sha256((src / rel).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- true reasons, typed


def png_with_chunk_before_idat(kind: bytes, payload: bytes) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40), dtype=np.uint8), "L").save(buf, "PNG")
    png = buf.getvalue()
    chunk = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    return png[:33] + chunk + png[33:]  # right after IHDR (8-byte signature + 25-byte IHDR)


def tiff_gray_alpha_16(w: int = 40, h: int = 30) -> bytes:
    """A valid 16-bit gray + alpha TIFF (ImageMagick reads it), which Pillow has no mode for."""
    pixels = np.random.default_rng(1).integers(0, 65535, (h, w, 2), dtype=np.uint16).astype("<u2").tobytes()
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 2, None), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, 1, None),
               (277, 3, 1, 2), (278, 3, 1, h), (279, 4, 1, len(pixels)), (338, 3, 1, 2)]
    data_at = 8 + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(entries)))
    for tag, typ, count, value in entries:
        if tag == 258:  # two 16-bit samples fit in the entry itself
            out += struct.pack("<HHIHH", tag, typ, count, 16, 16)
        elif typ == 3:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, data_at if tag == 273 else value)
    return bytes(out + struct.pack("<I", 0) + pixels)


def cut_tiff() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (60, 80), dtype=np.uint8), "L").save(
        buf, "TIFF", compression="tiff_deflate")
    data = buf.getvalue()
    return data[: len(data) // 2]  # Pillow writes the directory last: it is cut off


BAD = {
    "cut.tif": (cut_tiff, "truncated TIFF: the file ends before its directory", Kind.INPUT_TRUNCATED),
    "gray-alpha-16.tif": (tiff_gray_alpha_16, "unsupported TIFF: 16-bit gray with alpha has no Pillow pixel mode",
                          Kind.UNSUPPORTED),
    "huge-iccp.png": (lambda: png_with_chunk_before_idat(b"iCCP", b"scanner\x00\x00" + zlib.compress(bytes(16 << 20))),
                      "too large: a PNG metadata chunk decompresses past the safety limit "
                      "(Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK)", Kind.TOO_LARGE),
    "ztxt-first.png": (lambda: png_with_chunk_before_idat(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"x" * (16 << 20))),
                       "too large: a PNG metadata chunk decompresses past the safety limit "
                       "(Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK)", Kind.TOO_LARGE),
}


def test_files_pillow_cannot_open_get_their_true_reason_and_kind(tmp_path: Path, random_weights: Path, fast_cli) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    good = scans(src)
    for name, (make, reason, kind) in BAD.items():
        (src / name).write_bytes(make())
        with pytest.raises(ImageError) as err:
            read_scan(src / name)
        assert (str(err.value), err.value.kind) == (reason, kind), name
    magick = subprocess.run(["identify", str(src / "gray-alpha-16.tif")], capture_output=True, text=True)
    assert magick.returncode == 0 and "16-bit" in magick.stdout, "the TIFF must be valid (imagemagick reads it)"

    result = runner.invoke(app, command(src, out, random_weights))
    assert result.exit_code == 1, result.output
    records = file_records(out / "manifest.jsonl")
    assert {n: (r["reason"], r["kind"]) for n, r in records.items() if r["status"] == "failed"} == {
        n: (reason, kind.value) for n, (_, reason, kind) in BAD.items()}
    assert {n for n, r in records.items() if r["status"] == "done"} == set(good)
    # The scans failed for what they are: a plain rerun leaves them, --retry-failed tries them.
    plan = runner.invoke(app, [*command(src, out, random_weights), "--dry-run"])
    why = {f["input"]: (f["action"], f["why"]) for f in json.loads(plan.stdout)["files"]}
    assert all(why[n] == ("skip", "previously failed") for n in BAD)


def test_resume_decides_by_kind_and_retries_a_changed_failed_input(tmp_path: Path) -> None:
    scan = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(scan)
    st = scan.stat()

    def failed(kind: str | None, reason: str) -> ResumeIndex:
        return ResumeIndex([FileRecord(input="a.png", status="failed", reason=reason, kind=kind,
                                       input_size=st.st_size, input_mtime=st.st_mtime)])

    out = tmp_path / "out.png"
    # Kinds outside the scan are retried by a plain rerun; the reason's wording plays no part.
    for kind in ("disk full", "output side", "vanished", "unreadable", "input changed", "interrupted", "internal"):
        assert failed(kind, "whatever the words")._latest["a.png"].failure_kind.value == kind
        assert failed(kind, "whatever the words").decide("a.png", scan, "k", out)[0] == "do", kind
    for kind in ("input corrupt", "input truncated", "unsupported", "too large", "crashed"):
        assert failed(kind, "disk full").decide("a.png", scan, "k", out) == ("skip", "previously failed"), kind
    # Records of older versions (no kind) get theirs from the reason, once, when read.
    assert failed(None, "disk full").decide("a.png", scan, "k", out)[0] == "do"
    assert failed(None, "permission denied").decide("a.png", scan, "k", out)[0] == "do"
    assert failed(None, "truncated PNG: image file is truncated").decide("a.png", scan, "k", out)[0] == "skip"
    # Any failure is retried once its input changed (a fixed or re-scanned file), like a done one.
    os.utime(scan, (st.st_atime, st.st_mtime + 60))
    Image.fromarray(np.ones((9, 9), np.uint8), "L").save(scan)
    assert failed("input corrupt", "corrupt PNG").decide("a.png", scan, "k", out) == ("do", "input changed")
