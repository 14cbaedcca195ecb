"""Manifest: append-only records, torn-line tolerance, resume decisions, run lock, shard merge."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorize_cli import manifest as mf
from colorize_cli.manifest import Reason
from colorize_cli.manifest import (
    FileRecord,
    LockedError,
    ManifestWriter,
    ResumeIndex,
    RunLock,
    count_statuses,
    end_record,
    manifest_path,
    merge_manifests,
    read_manifest,
    run_header,
    settings_key,
    sha256_file,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY = settings_key({"color": {"saturation": 1.0}, "output": {"format": None}}, "ab" * 32)


# --------------------------------------------------------------------------- helpers


def write_scan(path: Path, seed: int, size: tuple[int, int] = (24, 16)) -> Path:
    """A small real grayscale PNG; different seeds give different bytes of the same size class."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0]), dtype=np.uint8), "L").save(path)
    return path


def done_record(rel: str, inp: Path, out: Path, key: str = KEY, run_id: str = "r1") -> FileRecord:
    """The record the engine would write after successfully producing ``out`` from ``inp``."""
    ist, ost = inp.stat(), out.stat()
    return FileRecord(
        input=rel,
        status="done",
        output=out.name,
        input_size=ist.st_size,
        input_mtime=ist.st_mtime,
        input_sha256=sha256_file(inp),
        output_sha256=sha256_file(out),
        output_size=ost.st_size,
        output_mtime=ost.st_mtime,
        width=24,
        height=16,
        mode="L",
        seconds=0.5,
        run_id=run_id,
        settings_key=key,
    )


def failed_record(rel: str, inp: Path, reason: str = "truncated PNG file") -> FileRecord:
    ist = inp.stat()
    return FileRecord(
        input=rel,
        status="failed",
        reason=reason,
        input_size=ist.st_size,
        input_mtime=ist.st_mtime,
        input_sha256=sha256_file(inp),
        run_id="r1",
        settings_key=KEY,
    )


def shift_mtime(path: Path, seconds: float = 1000.0) -> None:
    st = path.stat()
    os.utime(path, (st.st_atime, st.st_mtime + seconds))


# --------------------------------------------------------------------------- paths and keys


def test_manifest_path_default_shard_and_override(tmp_path: Path) -> None:
    assert manifest_path(tmp_path) == tmp_path / "manifest.jsonl"
    assert manifest_path(tmp_path, (2, 4)) == tmp_path / "manifest.2-of-4.jsonl"
    assert manifest_path(tmp_path, (2, 4), tmp_path / "x.jsonl") == tmp_path / "x.jsonl"
    with pytest.raises(ValueError, match="1 <= K <= N, got 5-of-4"):
        manifest_path(tmp_path, (5, 4))


def test_settings_key_is_canonical_and_sensitive() -> None:
    a = {"color": {"saturation": 1.0, "tile_size": 512}, "output": {"format": "png"}}
    reordered = {"output": {"format": "png"}, "color": {"tile_size": 512, "saturation": 1.0}}
    changed = {"color": {"saturation": 1.2, "tile_size": 512}, "output": {"format": "png"}}
    key = settings_key(a, "m1")
    assert len(key) == 16 and int(key, 16) >= 0
    assert settings_key(reordered, "m1") == key
    assert settings_key(changed, "m1") != key
    assert settings_key(a, "m2") != key


def test_sha256_file_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    import hashlib

    data = np.random.default_rng(0).bytes(3 * 1024 + 7)
    p = tmp_path / "blob.bin"
    p.write_bytes(data)
    assert sha256_file(p, chunk_size=1000) == hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- records and I/O


def test_file_record_validation_and_forward_compat() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        FileRecord(input="a.png", status="ok")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs 'input' and 'status'"):
        FileRecord.from_dict({"type": "file", "status": "done"})
    rec = FileRecord.from_dict(
        {"type": "file", "input": "a.png", "status": "skipped", "reason": "x", "future_field": 1}
    )
    assert rec.input == "a.png" and rec.notes == [] and rec.reason == "x"


def test_writer_reader_round_trip(tmp_path: Path) -> None:
    path = manifest_path(tmp_path / "out")  # parent folder does not exist yet
    header = run_header("r1", "koala", "ab" * 32, {"color": {"saturation": 1.0}, "w": tmp_path},
                        ["colorize-dir", "scans"])
    odd_name = os.fsdecode(b"box/caf\xe9.tif")  # a Latin-1 filename on a UTF-8 system
    records = [
        FileRecord(input="box 1/été.png", status="done", output="box 1/été.png",
                   input_size=10, input_mtime=1712345678.123456, input_sha256="0" * 64,
                   width=3, height=2, mode="L", settings_key=KEY, notes=["dropped XMP"]),
        FileRecord(input=odd_name, status="failed", reason="cannot identify image file"),
        FileRecord(input="c.png", status="skipped", reason="not a scan"),
    ]
    with ManifestWriter(path) as w:
        w.write(header)
        for r in records:
            w.write(r)
        w.write(end_record("r1", count_statuses(records), interrupted=False))

    raw = path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 5
    assert "été".encode() in raw  # ensure_ascii=False: names stay readable
    raw.decode("utf-8")  # and the file is valid UTF-8 even with the undecodable name

    bad: list[int] = []
    back = list(read_manifest(path, bad))
    assert bad == []
    assert [r["type"] for r in back] == ["run", "file", "file", "file", "end"]
    assert back[0]["settings"]["w"] == tmp_path.as_posix()
    assert back[0]["started"].endswith("Z") and back[0]["host"] == socket.gethostname()
    assert [FileRecord.from_dict(d) for d in back[1:4]] == records
    assert back[2]["input"] == odd_name  # exact str round trip, surrogates included
    assert back[4]["counts"] == {"done": 1, "failed": 1, "skipped": 1}
    assert back[4]["interrupted"] is False


def test_torn_last_line_is_isolated_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    first = FileRecord(input="a.png", status="done", settings_key=KEY)
    with ManifestWriter(path) as w:
        w.write(first)
    line = json.dumps(FileRecord(input="b.png", status="done").to_json())
    with open(path, "ab") as f:  # a crash in the middle of the second record
        f.write(line[: len(line) // 2].encode())

    bad: list[int] = []
    assert [r["input"] for r in read_manifest(path, bad)] == ["a.png"]
    assert bad == [2]

    with ManifestWriter(path) as w:
        w.write(FileRecord(input="c.png", status="failed", reason="boom"))
    bad = []
    assert [r["input"] for r in read_manifest(path, bad)] == ["a.png", "c.png"]
    assert bad == [2]
    assert path.read_bytes().endswith(b'"notes": []}\n')


def test_torn_utf8_and_corrupt_middle_lines_never_crash(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    good = json.dumps(FileRecord(input="é.png", status="done").to_json(), ensure_ascii=False)
    cut = good.encode()[: good.encode().index("é".encode()) + 1]  # half of a UTF-8 character
    path.write_bytes(
        good.encode() + b"\n" + b"{not json\n" + b"\n" + b"[1, 2]\n" + b'{"no": "type"}\n'
        + good.encode() + b"\n" + cut
    )
    bad: list[int] = []
    assert [r["input"] for r in read_manifest(path, bad)] == ["é.png", "é.png"]
    assert bad == [2, 4, 5, 7]  # blank line 3 is not an error
    assert list(read_manifest(tmp_path / "missing.jsonl")) == []


def test_writer_is_thread_safe_and_refuses_after_close(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    writer = ManifestWriter(path, fsync=False).open()

    def work(t: int) -> None:
        for i in range(200):
            writer.write(FileRecord(input=f"t{t}/{i:03d}.png", status="done", notes=["x" * 300]))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    bad: list[int] = []
    inputs = [r["input"] for r in read_manifest(path, bad)]
    assert bad == [] and len(inputs) == 1600 and len(set(inputs)) == 1600
    with pytest.raises(ValueError, match="is closed"):
        writer.write(FileRecord(input="late.png", status="done"))


def test_count_statuses_counts_file_records_only() -> None:
    recs = [
        {"type": "run", "run_id": "r"},
        {"type": "file", "input": "a", "status": "done"},
        FileRecord(input="b", status="failed", reason="x"),
        {"type": "file", "input": "c", "status": "done"},
        {"type": "end", "counts": {"done": 99}},
    ]
    assert count_statuses(recs) == {"done": 2, "failed": 1, "skipped": 0}


# --------------------------------------------------------------------------- resume decisions


@pytest.fixture()
def done_job(tmp_path: Path) -> tuple[ResumeIndex, Path, Path]:
    inp = write_scan(tmp_path / "scans" / "box" / "a.png", seed=1)
    out = write_scan(tmp_path / "color" / "box" / "a.png", seed=2)
    return ResumeIndex([{"type": "run"}, done_record("box/a.png", inp, out).to_json()]), inp, out


def test_resume_new_and_already_done(done_job, tmp_path: Path) -> None:
    index, inp, out = done_job
    other = write_scan(tmp_path / "scans" / "b.png", seed=3)
    assert index.decide("b.png", other, KEY, tmp_path / "color" / "b.png") == ("do", "new")
    assert index.decide(Path("box/a.png"), inp, KEY, out) == ("skip", "already done")
    assert index.decide("box/a.png", inp, KEY, out, overwrite=True) == ("do", "overwrite requested")


def test_resume_trusts_matching_stat_without_hashing(done_job, monkeypatch) -> None:
    index, inp, out = done_job

    def no_hashing(path, chunk_size=0):
        raise AssertionError(f"hashed {path} although its stat matched")

    monkeypatch.setattr(mf.resume, "sha256_file", no_hashing)
    assert index.decide("box/a.png", inp, KEY, out) == ("skip", "already done")


def test_resume_touched_files_are_still_done(done_job) -> None:
    index, inp, out = done_job
    shift_mtime(inp)  # e.g. restored from a backup: same bytes, new mtime
    shift_mtime(out)
    assert index.decide("box/a.png", inp, KEY, out) == ("skip", "already done")


def test_resume_input_changed(done_job) -> None:
    index, inp, out = done_job
    size = inp.stat().st_size
    data = bytearray(inp.read_bytes())
    data[-20] ^= 0xFF  # same size, different content
    inp.write_bytes(bytes(data))
    shift_mtime(inp)
    assert inp.stat().st_size == size
    assert index.decide("box/a.png", inp, KEY, out) == ("do", "input changed")
    write_scan(inp, seed=9, size=(40, 40))  # a different size needs no hashing at all
    assert index.decide("box/a.png", inp, KEY, out) == ("do", "input changed")


def test_resume_settings_changed(done_job) -> None:
    index, inp, out = done_job
    other_key = settings_key({"color": {"saturation": 1.5}, "output": {"format": None}}, "ab" * 32)
    assert index.decide("box/a.png", inp, other_key, out) == ("do", "settings changed")


def test_resume_output_missing_and_changed(done_job) -> None:
    index, inp, out = done_job
    data = bytearray(out.read_bytes())
    data[-20] ^= 0xFF  # someone edited the output in place
    out.write_bytes(bytes(data))
    shift_mtime(out)
    assert index.decide("box/a.png", inp, KEY, out) == ("do", "output changed")
    out.unlink()
    assert index.decide("box/a.png", inp, KEY, out) == ("do", "output missing")
    assert index.decide("box/a.png", inp, KEY, None) == ("do", "output missing")


def test_resume_failed_files_and_retry_failed(tmp_path: Path) -> None:
    bad_in = write_scan(tmp_path / "scans" / "bad.png", seed=4)
    done_in = write_scan(tmp_path / "scans" / "ok.png", seed=5)
    done_out = write_scan(tmp_path / "color" / "ok.png", seed=6)
    new_in = write_scan(tmp_path / "scans" / "new.png", seed=7)
    index = ResumeIndex(
        [failed_record("bad.png", bad_in), done_record("ok.png", done_in, done_out)]
    )
    bad_out = tmp_path / "color" / "bad.png"

    # Default: a failure with unchanged input is not re-attempted; new work still is.
    assert index.decide("bad.png", bad_in, KEY, bad_out) == ("skip", "previously failed")
    assert index.decide("new.png", new_in, KEY, tmp_path / "color" / "new.png") == ("do", "new")

    # --retry-failed: only failures are processed.
    assert index.decide("bad.png", bad_in, KEY, bad_out, retry_failed=True) == (
        "do", "previously failed")
    action, reason = index.decide("new.png", new_in, KEY, tmp_path / "x.png", retry_failed=True)
    assert action == "skip" and reason is Reason.NOT_A_FAILURE and "--retry-failed" in reason
    assert index.decide("ok.png", done_in, KEY, done_out, retry_failed=True) == (
        "skip", "already done")

    # A failed input that was replaced (the archivist re-scanned it) is redone by default.
    write_scan(bad_in, seed=8, size=(30, 30))
    assert index.decide("bad.png", bad_in, KEY, bad_out) == ("do", "input changed")
    assert index.decide("bad.png", bad_in, KEY, bad_out, overwrite=True)[0] == "do"


def test_resume_last_record_wins_but_skipped_never_hides_an_outcome(done_job) -> None:
    index, inp, out = done_job
    index.add({"type": "file", "input": "box/a.png", "status": "skipped", "reason": "already done"})
    assert index.get("box/a.png").status == "done"
    assert index.decide("box/a.png", inp, KEY, out) == ("skip", "already done")
    index.add(failed_record("box/a.png", inp, "out of memory"))
    assert index.decide("box/a.png", inp, KEY, out) == ("skip", "previously failed")
    assert len(index) == 1 and "box/a.png" in index
    assert count_statuses(index.records()) == {"done": 0, "failed": 1, "skipped": 0}


def test_resume_index_loads_manifests_in_order(tmp_path: Path) -> None:
    inp = write_scan(tmp_path / "a.png", seed=1)
    out = write_scan(tmp_path / "out" / "a.png", seed=2)
    first, second = tmp_path / "m1.jsonl", tmp_path / "m2.jsonl"
    with ManifestWriter(first) as w:
        w.write(failed_record("a.png", inp))
    with ManifestWriter(second) as w:
        w.write(done_record("a.png", inp, out))
    assert ResumeIndex.load([first, second]).decide("a.png", inp, KEY, out) == (
        "skip", "already done")
    assert ResumeIndex.load([second, first]).decide("a.png", inp, KEY, out) == (
        "skip", "previously failed")
    assert len(ResumeIndex.load(tmp_path / "none.jsonl")) == 0


def test_resume_speed_100k_done_files(tmp_path: Path) -> None:
    """100,000 finished files must be checked in seconds: two stat() calls each, no hashing."""
    n_records, n_real = 100_000, 2_000
    real = []
    for j in range(n_real):
        d = f"{j // 200:02d}"
        inp, out = tmp_path / "in" / d / f"{j}.tif", tmp_path / "out" / d / f"{j}.tif"
        inp.parent.mkdir(parents=True, exist_ok=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        inp.write_bytes(b"I" * (j % 97 + 1))
        out.write_bytes(b"O" * (j % 89 + 1))
        ist, ost = inp.stat(), out.stat()
        real.append((inp, out, ist.st_size, ist.st_mtime, ost.st_size, ost.st_mtime))
    path = tmp_path / "out" / "manifest.jsonl"
    with ManifestWriter(path, fsync=False) as w:
        w.write(run_header("r1", "koala", "ab" * 32, {}, ["colorize-dir"]))
        for i in range(n_records):
            inp, out, isz, imt, osz, omt = real[i % n_real]
            w.write(FileRecord(
                input=f"box{i // 1000:03d}/scan{i:06d}.tif", status="done",
                output=f"box{i // 1000:03d}/scan{i:06d}.tif", input_size=isz, input_mtime=imt,
                input_sha256="1" * 64, output_sha256="2" * 64, output_size=osz, output_mtime=omt,
                width=4000, height=3000, mode="L", seconds=1.0, run_id="r1", settings_key=KEY,
            ))

    start = time.perf_counter()
    index = ResumeIndex.load(path)
    loaded = time.perf_counter() - start
    decisions = [
        index.decide(f"box{i // 1000:03d}/scan{i:06d}.tif", real[i % n_real][0], KEY,
                     real[i % n_real][1])
        for i in range(n_records)
    ]
    elapsed = time.perf_counter() - start
    print(f"\nresume over {n_records} done records: load {loaded:.2f} s, total {elapsed:.2f} s")
    assert len(index) == n_records
    assert decisions.count(("skip", "already done")) == n_records
    # "seconds, not minutes": about 3 s on an idle 2-core machine; the bound leaves room for a
    # machine shared with a training run, and still fails long before a hashing resume would.
    assert elapsed < 20.0


# --------------------------------------------------------------------------- lock


def test_lock_refuses_second_run_then_frees(tmp_path: Path) -> None:
    out = tmp_path / "color"
    with RunLock(out, argv=["colorize-dir", "scans"]) as held:
        assert held.path == out / ".colorize.lock" and held.path.exists()
        with pytest.raises(LockedError) as err:
            RunLock(out).acquire()
        msg = str(err.value)
        assert msg.startswith(
            f"another colorize-dir run (pid {os.getpid()} on host {socket.gethostname()}, "
            "started 20"
        )
        assert f"is using this output folder; if it is gone, delete {out / '.colorize.lock'}" in msg
        assert err.value.holder["argv"] == ["colorize-dir", "scans"]
    assert not (out / ".colorize.lock").exists()
    with RunLock(out):
        pass


def test_shard_locks_are_independent(tmp_path: Path) -> None:
    with RunLock(tmp_path, (1, 4)) as a, RunLock(tmp_path, (2, 4)) as b:
        assert a.path.name == ".colorize.1-of-4.lock" and b.path.name == ".colorize.2-of-4.lock"
        refusal = r"this output folder \(shard 2-of-4\); if it is gone"
        with pytest.raises(LockedError, match=refusal):
            RunLock(tmp_path, (2, 4)).acquire()


def test_stale_lock_file_is_taken_over(tmp_path: Path) -> None:
    stale = tmp_path / ".colorize.lock"
    stale.write_text('{"pid": 999999, "host": "gone", "started": "2020-01-01T00:00:00Z"}\n')
    with RunLock(tmp_path) as lock:
        assert json.loads(stale.read_text())["pid"] == os.getpid()
        assert lock.path == stale


def test_lock_of_killed_process_is_released(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from colorize_cli.manifest import RunLock\n"
        "RunLock(sys.argv[1]).acquire()\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"pid {child.pid} on host"):
            RunLock(tmp_path).acquire()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()
    assert (tmp_path / ".colorize.lock").exists()  # kill -9 left the file behind...
    with RunLock(tmp_path):  # ...but not the flock, so the next run proceeds
        pass


# --------------------------------------------------------------------------- merge


def test_merge_three_shards_gives_union(tmp_path: Path) -> None:
    shards = [manifest_path(tmp_path, (k, 3)) for k in (1, 2, 3)]
    for k, path in enumerate(shards, start=1):
        with ManifestWriter(path) as w:
            w.write(run_header(f"r{k}", "koala", "ab" * 32, {}, ["colorize-dir", f"--shard={k}/3"]))
            for i in range(k * 10, k * 10 + 5):
                w.write(FileRecord(input=f"s{i}.png", status="done", run_id=f"r{k}"))
            w.write(end_record(f"r{k}", {"done": 5}, interrupted=False))
    # Shard 3 later retried a file of shard 1 (failed), and logged a skip for a done one.
    with ManifestWriter(shards[2]) as w:
        w.write(FileRecord(input="s10.png", status="failed", reason="disk full", run_id="r3b"))
        w.write(FileRecord(input="s20.png", status="skipped", reason="already done"))
    with open(shards[1], "ab") as f:
        f.write(b'{"type": "file", "inp')  # shard 2 was killed mid-record

    dest = manifest_path(tmp_path)
    summary = merge_manifests(shards, dest)
    assert summary == mf.MergeSummary(runs=6, files=15, bad_lines=1)
    merged = list(read_manifest(dest))
    assert [r["run_id"] for r in merged[:6]] == ["r1", "r1", "r2", "r2", "r3", "r3"]
    files = {r["input"]: r for r in merged if r["type"] == "file"}
    assert set(files) == {f"s{i}.png" for k in (1, 2, 3) for i in range(k * 10, k * 10 + 5)}
    assert files["s10.png"]["status"] == "failed" and files["s10.png"]["run_id"] == "r3b"
    assert files["s20.png"]["status"] == "done"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    # Merging into one of the inputs is safe (read first, then replaced atomically).
    again = merge_manifests([dest, shards[0]], dest)
    assert again.files == 15
    assert {r["input"] for r in read_manifest(dest) if r["type"] == "file"} == set(files)
    assert next(r for r in read_manifest(dest) if r.get("input") == "s10.png")["status"] == "done"
