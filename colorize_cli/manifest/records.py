"""Manifest records and their schema: the one place that says what a valid record is.

A manifest is data a later run acts on (skip, redo, link from the report), so every record is
checked against :data:`SCHEMA` when it is read: a field of the wrong type, an unknown status or
failure kind, or a path that is absolute or climbs out of its root (``..``) makes the record
invalid, and the reader skips it with one warning naming its line. Unknown fields and unknown
record types (from newer versions) are allowed and ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import Any, Literal

from colorize_cli import __version__
from colorize_cli.failures import Kind, kind_of_legacy_reason
from colorize_cli.discover.shards import check_shard

Status = Literal["done", "failed", "skipped"]
STATUSES: tuple[str, ...] = ("done", "failed", "skipped")
KINDS: tuple[str, ...] = tuple(k.value for k in Kind)

# --------------------------------------------------------------------------- the schema

_NUM = (int, float)
_OPT_STR = (str, type(None))
_OPT_INT = (int, type(None))
_OPT_NUM = (int, float, type(None))
_OPT_DICT = (dict, type(None))

# record type -> field -> allowed JSON types. Fields named in REQUIRED must be present.
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "run": {
        "run_id": (str,), "tool_version": (str,), "model": (str,), "model_sha256": (str,),
        "settings": (dict,), "started": (str,), "host": (str,), "argv": (list,),
    },
    "file": {
        "input": (str,), "status": (str,), "output": _OPT_STR, "reason": _OPT_STR, "kind": _OPT_STR,
        "input_size": _OPT_INT, "input_mtime": _OPT_NUM, "input_sha256": _OPT_STR,
        "output_sha256": _OPT_STR, "output_size": _OPT_INT, "output_mtime": _OPT_NUM,
        "width": _OPT_INT, "height": _OPT_INT, "mode": _OPT_STR, "seconds": _OPT_NUM,
        "run_id": _OPT_STR, "settings_key": _OPT_STR, "review": _OPT_DICT, "notes": (list, type(None)),
        "pages": _OPT_INT,
    },
    "end": {"run_id": (str,), "finished": (str,), "counts": (dict,), "interrupted": (bool,)},
}
REQUIRED: dict[str, tuple[str, ...]] = {"file": ("input", "status")}
_PATH_FIELDS = ("input", "output")  # relative to the input / output root, and must stay inside it
# The same table as exact-type sets: `type(v) in ...` is the fast check for 100,000 records, and
# it keeps JSON booleans out of number fields (bool is a subclass of int).
_EXACT: dict[str, dict[str, frozenset[type]]] = {
    kind: {name: frozenset(types) | ({float} if int in types and float in types else set()) for name, types in fields.items()}
    for kind, fields in SCHEMA.items()
}
_STATUSES = frozenset(("done", "failed", "skipped"))
_KINDS = frozenset(k.value for k in Kind)


def record_problem(record: Any) -> str | None:
    """Why ``record`` (one parsed manifest line) is not a valid record, or None if it is."""
    if not isinstance(record, dict) or not isinstance(record.get("type"), str):
        return "not a manifest record"
    kind = record["type"]
    exact = _EXACT.get(kind)
    if exact is None:
        return None  # a record type from a newer version: passed through, never acted on
    for name in REQUIRED.get(kind, ()):
        if name not in record:
            return f"{kind} record needs {name!r}"
    for name, value in record.items():
        allowed = exact.get(name)
        if allowed is not None and type(value) not in allowed:
            return f"field {name!r} must be {_type_words(SCHEMA[kind][name])}, not {_json_type(value)}"
    if kind != "file":
        return None
    if record["status"] not in _STATUSES:
        return f"status must be one of {STATUSES}, got {record['status']!r}"
    if record.get("kind") is not None and record["kind"] not in _KINDS:
        return f"kind must be one of {KINDS}, got {record['kind']!r}"
    if any(not isinstance(n, str) for n in record.get("notes") or ()):
        return "field 'notes' must be a list of strings"
    for name in _PATH_FIELDS:
        value = record.get(name)
        if value is not None and (why := path_problem(value)):
            return f"{name} path {value!r} {why}"
    return None


def path_problem(rel: str) -> str | None:
    """Why ``rel`` may not name a file under a root, or None. Lexical only: a record is never
    followed, hashed, linked or deleted unless its path is relative and stays inside its root."""
    if not rel or "\x00" in rel:
        return "is empty or holds a NUL"
    if rel[0] in "/\\" or (len(rel) > 1 and rel[1] == ":"):  # POSIX root, Windows root or drive
        return "is absolute"
    if ".." in rel and ".." in rel.replace("\\", "/").split("/"):
        return "leaves its folder (..)"
    return None


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _type_words(types: tuple[type, ...]) -> str:
    words = dict.fromkeys(_json_type(t()) if t is not type(None) else "null" for t in types)
    return " or ".join(words)


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
    return Path(out_root) / f"manifest{shard_tag(shard)}.jsonl"


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


def shard_tag(shard: tuple[int, int] | None) -> str:
    """``""`` or ``".K-of-N"``: how a shard's manifest and lock file names differ."""
    if shard is None:
        return ""
    k, n = check_shard(*shard)
    return f".{k}-of-{n}"


def _json_default(obj: Any) -> Any:
    """Let settings hold Paths and tuples-of-Paths without every caller converting them."""
    if isinstance(obj, PurePath):
        return obj.as_posix()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Kind):
        return obj.value
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def encode_line(record: Mapping[str, Any]) -> bytes:
    """One record as a UTF-8 line. Falls back to \\u escapes for names that are not valid
    Unicode (undecodable bytes in a Linux filename), so the file stays valid UTF-8 and the exact
    Python string still round-trips through json.loads."""
    try:
        text = json.dumps(record, ensure_ascii=False, sort_keys=False, default=_json_default)
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(record, ensure_ascii=True, sort_keys=False, default=_json_default)
        return (text + "\n").encode("ascii")


def rel_key(job_rel: str | PurePath) -> str:
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
    ``input_size``, ``input_mtime`` and ``input_sha256`` all describe the one buffer that was read
    and colorized. ``kind`` is set on failures (a :class:`~colorize_cli.failures.Kind` value).
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
    kind: str | None = None  # why a failure happened, as a program acts on it (failures.Kind)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"file record status must be one of {STATUSES}, got {self.status!r}")
        if isinstance(self.kind, Kind):
            self.kind = self.kind.value

    @property
    def failure_kind(self) -> Kind | None:
        """The kind of a failed record; records of older versions get theirs from the reason."""
        if self.status != "failed":
            return None
        if self.kind in KINDS:
            return Kind(self.kind)
        return kind_of_legacy_reason(self.reason or "")

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict written to the manifest (``type`` first, for humans using grep)."""
        out: dict[str, Any] = {"type": "file"}
        # fields one level deep (dataclasses.asdict deep-copies every value: a third of a
        # 100,000-record manifest's writing time, for values that are all str, numbers or flat)
        out.update((f.name, getattr(self, f.name)) for f in _FILE_FIELDS)
        out["notes"] = list(self.notes)
        out["review"] = dict(self.review) if self.review is not None else None
        if out["kind"] is None:
            del out["kind"]  # done and skipped records keep the shape older readers know
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileRecord:
        """Build from a manifest line, validated against the schema; unknown keys are ignored."""
        if "input" not in data or "status" not in data:
            raise ValueError("file record needs 'input' and 'status'")
        problem = record_problem({**data, "type": "file"})
        if problem:
            raise ValueError(problem)
        return cls.from_valid(data)

    @classmethod
    def from_valid(cls, data: Mapping[str, Any]) -> FileRecord:
        """Build from a record :func:`record_problem` already passed (what read_manifest yields)."""
        kwargs = {k: v for k, v in data.items() if k in _FIELD_NAMES}
        kwargs["notes"] = list(kwargs.get("notes") or [])
        return cls(**kwargs)


_FILE_FIELDS = dataclasses.fields(FileRecord)


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(FileRecord))


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
        if status in counts:
            counts[status] += 1
    return counts
