"""The run manifest: an append-only JSON Lines record of what each run did to each file.

Why JSON Lines, appended and fsync'ed one record at a time: a run over 100,000 scans can be
killed at any moment (power cut, kill -9, Ctrl-C), and the manifest is what the next run trusts
to skip finished work. A crash can at worst leave one torn last line; readers skip it and
writers start on a fresh line, so every complete record stays readable forever.

Record types (one JSON object per line):

* ``{"type": "run", ...}``   one header per run: tool version, model and its sha256, settings.
* ``{"type": "file", ...}``  one per input the run touched, see :class:`FileRecord`.
* ``{"type": "end", ...}``   optional footer with the run's counts and whether it was interrupted.

Resume rules (:meth:`ResumeIndex.decide`), the last record per input wins:

* default          redo everything that is not validly done, *except* a failed file whose input
                   is unchanged: a permanently broken scan is not re-attempted on every run.
                   Failures that were about where the output goes, not the scan (disk full,
                   output folder not writable or blocked, see ``OUTPUT_SIDE_REASONS``), are
                   redone: the message told the user to fix that and rerun.
* ``retry_failed`` process only previous failures (changed or not); everything else is skipped.
* ``overwrite``    redo everything.

"Validly done" means: the last record says done, with the same settings key (output-affecting
settings + model sha256), the input has the same size and mtime (or, when those moved, the same
sha256), and the output exists with the recorded size and mtime (or, when those moved, the
recorded sha256). Outputs are hashed only when their stat changed, so resuming a finished run
over 100,000 files costs two stat() calls per file, not 100,000 hashes.

Locking (:class:`RunLock`) uses a lock file per output folder (and per shard), held with
``flock`` for the run's life. The kernel drops a flock when its holder dies, even by kill -9, so
a lock file left behind by a dead run is taken over automatically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import secrets
import socket
import stat as stat_module
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import Any, Literal

from colorize_cli import __version__
from colorize_cli.fsutil import atomic_output, sha256_file

# POSIX. On Windows the lock degrades to O_EXCL only: a stale lock must be deleted by hand.
try:
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

Status = Literal["done", "failed", "skipped"]
Action = Literal["do", "skip"]
STATUSES: tuple[str, ...] = ("done", "failed", "skipped")

# Human-readable resume reasons, shown by --dry-run and the progress log.
REASON_NEW = "new"
REASON_DONE = "already done"
REASON_INPUT_CHANGED = "input changed"
REASON_SETTINGS_CHANGED = "settings changed"
REASON_OUTPUT_MISSING = "output missing"
REASON_OUTPUT_CHANGED = "output changed"
REASON_FAILED = "previously failed"
REASON_OVERWRITE = "overwrite requested"
REASON_FAILED_OUTPUT = "previously failed writing its output"
RETRY_FAILED_ONLY = "--retry-failed processes only previous failures"
# Failure reasons (prefixes, as imaging and the engine word them) that say nothing about the scan.
OUTPUT_SIDE_REASONS: tuple[str, ...] = ("disk full", "disk quota exceeded", "output folder")

_CHUNK = 1 << 20


# --------------------------------------------------------------------------- small helpers


def utc_now_iso() -> str:
    """Current time as ISO-8601 UTC with a trailing Z, second precision (what humans read)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def new_run_id() -> str:
    """A sortable, unique id: UTC timestamp plus random hex, so shards started together differ."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(4)}"


def manifest_path(
    out_root: str | os.PathLike[str],
    shard: tuple[int, int] | None = None,
    override: str | os.PathLike[str] | None = None,
) -> Path:
    """Where a run's manifest lives: ``override`` if given, else ``<out>/manifest[.K-of-N].jsonl``.

    Shards get their own file so parallel shards never interleave writes in one file.
    """
    if override is not None:
        return Path(override)
    return Path(out_root) / f"manifest{_shard_tag(shard)}.jsonl"


def settings_key(settings: Mapping[str, Any], model_sha256: str) -> str:
    """Short hash of the output-affecting settings and the model: equal keys mean equal outputs.

    Canonical JSON (sorted keys, no spaces) so dict order and formatting never change the key.
    """
    blob = json.dumps(
        {"settings": settings, "model_sha256": model_sha256},
        sort_keys=True,
        separators=(",", ":"),
        default=_json_default,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _shard_tag(shard: tuple[int, int] | None) -> str:
    if shard is None:
        return ""
    k, n = shard
    if not (1 <= k <= n):
        raise ValueError(f"shard must be K-of-N with 1 <= K <= N, got {k}-of-{n}")
    return f".{k}-of-{n}"


def _json_default(obj: Any) -> Any:
    """Let settings hold Paths and tuples-of-Paths without every caller converting them."""
    if isinstance(obj, PurePath):
        return obj.as_posix()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _encode_line(record: Mapping[str, Any]) -> bytes:
    """One record as a UTF-8 line. Falls back to \\u escapes for names that are not valid
    Unicode (undecodable bytes in a Linux filename), so the file stays valid UTF-8 and the exact
    Python string still round-trips through json.loads."""
    try:
        text = json.dumps(record, ensure_ascii=False, sort_keys=False, default=_json_default)
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(record, ensure_ascii=True, sort_keys=False, default=_json_default)
        return (text + "\n").encode("ascii")


def _rel_key(job_rel: str | PurePath) -> str:
    return job_rel.as_posix() if isinstance(job_rel, PurePath) else str(job_rel)


# --------------------------------------------------------------------------- records


def run_header(
    run_id: str,
    model: str,
    model_sha256: str,
    settings: Mapping[str, Any],
    argv: Sequence[str],
    *,
    started: str | None = None,
    host: str | None = None,
    tool_version: str = __version__,
) -> dict[str, Any]:
    """The header record written once at the start of every run (and every shard)."""
    return {
        "type": "run",
        "run_id": run_id,
        "tool_version": tool_version,
        "model": model,
        "model_sha256": model_sha256,
        "settings": dict(settings),
        "started": started or utc_now_iso(),
        "host": host or socket.gethostname(),
        "argv": list(argv),
    }


def end_record(
    run_id: str,
    counts: Mapping[str, int],
    interrupted: bool,
    *,
    finished: str | None = None,
) -> dict[str, Any]:
    """The footer record; its absence means the run died without a chance to write it."""
    return {
        "type": "end",
        "run_id": run_id,
        "finished": finished or utc_now_iso(),
        "counts": dict(counts),
        "interrupted": bool(interrupted),
    }


@dataclass
class FileRecord:
    """What happened to one input. Paths are POSIX, relative to the input / output root.

    ``output_size`` and ``output_mtime`` must be taken from the output *after* its final
    os.replace / utime, so a resume can trust a matching stat without re-hashing the output.
    """

    input: str
    status: Status
    output: str | None = None
    reason: str | None = None  # None when done; a one-line cause otherwise
    input_size: int | None = None
    input_mtime: float | None = None
    input_sha256: str | None = None
    output_sha256: str | None = None
    output_size: int | None = None
    output_mtime: float | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    seconds: float | None = None
    run_id: str | None = None
    settings_key: str | None = None
    review: dict[str, Any] | None = None  # thumbnail measures for the review sheet (report.py)
    pages: int | None = None  # pages colorized (a multi-page TIFF has more than one)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"file record status must be one of {STATUSES}, got {self.status!r}")

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict written to the manifest (``type`` first, for humans using grep)."""
        out: dict[str, Any] = {"type": "file"}
        out.update(dataclasses.asdict(self))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileRecord:
        """Build from a manifest line; unknown keys (from newer versions) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "input" not in kwargs or "status" not in kwargs:
            raise ValueError("file record needs 'input' and 'status'")
        kwargs["notes"] = list(kwargs.get("notes") or [])
        return cls(**kwargs)


def count_statuses(records: Iterable[Mapping[str, Any] | FileRecord]) -> dict[str, int]:
    """Count file records by status (other record types are ignored); every status is present.

    Counts every record given: pass ``ResumeIndex.records()`` for one state per input.
    """
    counts = dict.fromkeys(STATUSES, 0)
    for rec in records:
        if isinstance(rec, FileRecord):
            status = rec.status
        elif rec.get("type") == "file":
            status = rec.get("status")
        else:
            continue
        counts[status] = counts.get(status, 0) + 1
    return counts


# --------------------------------------------------------------------------- writing and reading


class ManifestWriter:
    """Appends records to a manifest, one line each, flushed and fsync'ed per record.

    Thread-safe: the engine's writer threads each call :meth:`write` when they finish a file.
    Each record is a single os.write on an O_APPEND descriptor, so a crash tears at most the
    record in flight. If an earlier crash left a torn last line, writing resumes on a new line.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._torn = False  # a failed write left a partial line that could not be cut off

    def open(self) -> ManifestWriter:
        if self._fd is not None:
            raise RuntimeError(f"manifest writer for {self.path} is already open")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size > 0:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":  # torn line from a crash: isolate it
                    _write_all(fd, b"\n")
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def write(self, record: FileRecord | Mapping[str, Any]) -> None:
        """Append one record and make it durable before returning."""
        data = _encode_line(record.to_json() if isinstance(record, FileRecord) else record)
        with self._lock:
            if self._fd is None:
                raise ValueError(f"manifest writer for {self.path} is closed")
            if self._torn:
                data = b"\n" + data
            start = os.fstat(self._fd).st_size
            try:
                _write_all(self._fd, data)
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                # A full disk can accept half a line: cut it off so the next record starts clean.
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    self._torn = True
                raise
            self._torn = False

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)

    def __enter__(self) -> ManifestWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_manifest(
    path: str | os.PathLike[str],
    bad_lines: list[int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield each complete record of a manifest, in file order. A missing file yields nothing.

    Corrupt lines (a torn last line after a crash, a line mangled by hand) are skipped, never
    fatal: each is logged as a warning and its 1-based line number appended to ``bad_lines``.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("type"), str):
                log.warning("%s: line %d is not a manifest record; skipped", path, number)
                if bad_lines is not None:
                    bad_lines.append(number)
                continue
            yield record


# --------------------------------------------------------------------------- resume


def _supersedes(new: FileRecord, old: FileRecord | None) -> bool:
    """Last record wins, except that a "skipped" record never hides a real outcome: a resume run
    that logs "skipped: already done" must not make the next run forget the file is done."""
    if old is None:
        return True
    return not (new.status == "skipped" and old.status in ("done", "failed"))


def _same_file(
    path: Path, size: int | None, mtime: float | None, sha256: str | None
) -> bool | None:
    """True if ``path`` still holds the recorded content, False if not, None if it is missing.

    Cheap first: equal size and mtime are trusted; a different size is a change; only an
    equal size with a moved mtime (touch, copy, restore from backup) costs a hash.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    if not stat_module.S_ISREG(st.st_mode):
        return False
    if size is not None and st.st_size != size:
        return False
    if size is not None and mtime is not None and st.st_mtime == mtime:
        return True
    if sha256 is None:
        return False
    try:
        return sha256_file(path) == sha256
    except OSError:
        return False


class ResumeIndex:
    """The latest state of every input, built from one or more manifests (last record wins)."""

    def __init__(self, records: Iterable[Mapping[str, Any] | FileRecord] = ()) -> None:
        self._latest: dict[str, FileRecord] = {}
        for rec in records:
            self.add(rec)

    @classmethod
    def load(
        cls, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
    ) -> ResumeIndex:
        """Index the file records of the manifest(s), read in order; missing files are fine."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        index = cls()
        for path in paths:
            for rec in read_manifest(path):
                index.add(rec)
        return index

    def add(self, record: Mapping[str, Any] | FileRecord) -> None:
        """Fold one record in; non-file records and malformed file records are ignored."""
        if not isinstance(record, FileRecord):
            if record.get("type") != "file":
                return
            try:
                record = FileRecord.from_dict(record)
            except (TypeError, ValueError) as exc:
                log.warning("ignoring malformed file record %r: %s", record.get("input"), exc)
                return
        if _supersedes(record, self._latest.get(record.input)):
            self._latest[record.input] = record

    def get(self, job_rel: str | PurePath) -> FileRecord | None:
        return self._latest.get(_rel_key(job_rel))

    def records(self) -> list[FileRecord]:
        """One record per input: its current state."""
        return list(self._latest.values())

    def __len__(self) -> int:
        return len(self._latest)

    def __contains__(self, job_rel: object) -> bool:
        return isinstance(job_rel, (str, PurePath)) and _rel_key(job_rel) in self._latest

    def decide(
        self,
        job_rel: str | PurePath,
        input_path: str | os.PathLike[str],
        settings_key: str,
        output_path: str | os.PathLike[str] | None,
        overwrite: bool = False,
        retry_failed: bool = False,
    ) -> tuple[Action, str]:
        """("do" | "skip", human-readable reason) for one job; see the module docstring."""
        if overwrite:
            return "do", REASON_OVERWRITE
        rec = self.get(job_rel)
        if rec is not None and rec.status == "failed":
            if not _same_file(Path(input_path), rec.input_size, rec.input_mtime, rec.input_sha256):
                return "do", REASON_INPUT_CHANGED
            if (rec.reason or "").startswith(OUTPUT_SIDE_REASONS):
                return "do", REASON_FAILED_OUTPUT
            return ("do" if retry_failed else "skip"), REASON_FAILED
        action, reason = self._decide_not_failed(rec, Path(input_path), settings_key, output_path)
        if retry_failed and action == "do":
            return "skip", f"{reason}; {RETRY_FAILED_ONLY}"
        return action, reason

    @staticmethod
    def _decide_not_failed(
        rec: FileRecord | None,
        input_path: Path,
        key: str,
        output_path: str | os.PathLike[str] | None,
    ) -> tuple[Action, str]:
        if rec is None or rec.status != "done":
            return "do", REASON_NEW
        if rec.settings_key != key:
            return "do", REASON_SETTINGS_CHANGED
        if not _same_file(input_path, rec.input_size, rec.input_mtime, rec.input_sha256):
            return "do", REASON_INPUT_CHANGED
        if output_path is None:
            return "do", REASON_OUTPUT_MISSING
        same_output = _same_file(
            Path(output_path), rec.output_size, rec.output_mtime, rec.output_sha256
        )
        if same_output is None:
            return "do", REASON_OUTPUT_MISSING
        if not same_output:
            return "do", REASON_OUTPUT_CHANGED
        return "skip", REASON_DONE


# --------------------------------------------------------------------------- merge


@dataclass(frozen=True)
class MergeSummary:
    """What :func:`merge_manifests` wrote."""

    runs: int  # header, footer and other non-file records kept
    files: int  # file records after de-duplication (one per input)
    bad_lines: int  # corrupt lines skipped across all inputs


def merge_manifests(
    paths: Sequence[str | os.PathLike[str]], dest: str | os.PathLike[str]
) -> MergeSummary:
    """Combine shard manifests into one: all run/end records first (in order), then one file
    record per input, the latest by order (paths in the order given, then line order) winning.

    Written to a temp file beside ``dest`` and os.replace'd, so ``dest`` may be one of ``paths``
    and a crash never leaves a half-merged manifest.
    """
    headers: list[dict[str, Any]] = []
    files: dict[str, dict[str, Any]] = {}
    kept: dict[str, FileRecord] = {}
    bad: list[int] = []
    malformed = 0
    for path in paths:
        for rec in read_manifest(path, bad):
            if rec.get("type") != "file":
                headers.append(rec)
                continue
            try:
                parsed = FileRecord.from_dict(rec)
            except (TypeError, ValueError):
                malformed += 1
                continue
            if _supersedes(parsed, kept.get(parsed.input)):
                kept[parsed.input] = parsed
                files[parsed.input] = rec

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dest) as f:
        for rec in headers:
            f.write(_encode_line(rec))
        for rec in files.values():
            f.write(_encode_line(rec))
    return MergeSummary(runs=len(headers), files=len(files), bad_lines=len(bad) + malformed)


# --------------------------------------------------------------------------- lock


class LockedError(RuntimeError):
    """Another live run holds the output folder (or the same shard of it)."""

    def __init__(self, message: str, path: Path, holder: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.path = path
        self.holder = dict(holder)


def lock_path(out_root: str | os.PathLike[str], shard: tuple[int, int] | None = None) -> Path:
    """``<out>/.colorize.lock``, or ``<out>/.colorize.K-of-N.lock`` so shards can share a folder."""
    return Path(out_root) / f".colorize{_shard_tag(shard)}.lock"


class RunLock:
    """Exclusive use of an output folder (or one shard of it) for one run's life.

    The lock file is created with O_CREAT|O_EXCL and held with flock. A second run that finds the
    file tries flock(LOCK_EX|LOCK_NB): failure means the holder is alive and the run is refused
    with :class:`LockedError`; success means the holder died (the kernel released its flock, even
    after kill -9), so the stale file is taken over. flock belongs to the open file, so even a
    second RunLock in the same process is refused.
    """

    def __init__(
        self,
        out_root: str | os.PathLike[str],
        shard: tuple[int, int] | None = None,
        *,
        argv: Sequence[str] = (),
    ) -> None:
        self.path = lock_path(out_root, shard)
        self.shard = shard
        self.argv = list(argv)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):  # retries only if the file is swapped under us by a racing release
            fd = self._open()
            if not self._try_flock(fd):
                holder = _read_holder(fd)
                os.close(fd)
                raise LockedError(self._refusal(holder), self.path, holder)
            if self._still_linked(fd):
                self._fd = fd
                self._write_holder(fd)
                return self
            os.close(fd)  # we locked a file that was just unlinked by its releasing owner
        raise LockedError(f"could not take {self.path}: it keeps changing", self.path, {})

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self._still_linked(fd):
                self.path.unlink()  # unlink while still holding the flock, then let go
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                return os.open(self.path, os.O_RDWR)
            except FileNotFoundError:  # released between our two opens: create it ourselves
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)

    @staticmethod
    def _try_flock(fd: int) -> bool:
        if fcntl is None:  # pragma: no cover - Windows: O_EXCL alone; existing file means "held"
            return os.fstat(fd).st_size == 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _still_linked(self, fd: int) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)

    def _write_holder(self, fd: int) -> None:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": utc_now_iso(),
            "argv": self.argv,
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        _write_all(fd, _encode_line(info))
        os.fsync(fd)

    def _refusal(self, holder: Mapping[str, Any]) -> str:
        if holder:
            who = (
                f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
                f"started {holder.get('started', '?')}"
            )
        else:
            who = "details not readable yet"
        what = "this output folder"
        if self.shard is not None:
            what += f" (shard {self.shard[0]}-of-{self.shard[1]})"
        return (
            f"another colorize-dir run ({who}) is using {what}; "
            f"if it is gone, delete {self.path}"
        )


def _read_holder(fd: int) -> dict[str, Any]:
    """The live holder's pid/host/start, best effort (it may be mid-write)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 64 * 1024)
        info = json.loads(data.decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
