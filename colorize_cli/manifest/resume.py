"""Resume decisions: from the manifest(s), what a new run must do with each input, and why.

Rules (:meth:`ResumeIndex.decide`), the last record per input wins:

* default          redo everything that is not validly done. A failed file is redone when its
                   input changed (size or mtime moved and its bytes differ), or when its failure
                   kind says nothing about the scan (``failures.RETRIED_BY_DEFAULT``: disk full,
                   output side, vanished, unreadable, changed while read, interrupted): the
                   message told the user to fix that and rerun. A scan that failed for what it is
                   (corrupt, truncated, unsupported, too large, internal) and has not changed is
                   not re-attempted on every run.
* ``retry_failed`` process only previous failures (changed or not); everything else is skipped.
* ``overwrite``    redo everything.

"Validly done" means: the last record says done, with the same settings key (output-affecting
settings + model sha256), the input has the same size and mtime (or, when those moved, the same
sha256), and the output exists with the recorded size and mtime (or, when those moved, the
recorded sha256). Outputs are hashed only when their stat changed, so resuming a finished run
over 100,000 files costs two stat() calls per file, not 100,000 hashes.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any, Literal

from colorize_cli.failures import RETRIED_BY_DEFAULT
from colorize_cli.io.fsutil import sha256_file
from colorize_cli.discover.outnames import page_files

from colorize_cli.manifest.records import FileRecord, rel_key
from colorize_cli.manifest.store import read_manifest

log = logging.getLogger("colorize_cli.manifest")

Action = Literal["do", "skip"]

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
REASON_FAILED_TRANSIENT = "previously failed for a reason outside the scan"
RETRY_FAILED_ONLY = "--retry-failed processes only previous failures"


def supersedes(new: FileRecord, old: FileRecord | None) -> bool:
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
            for rec in read_manifest(path):  # validated there: no second check per record
                if rec["type"] == "file":
                    index._fold(FileRecord.from_valid(rec))
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
        self._fold(record)

    def _fold(self, record: FileRecord) -> None:
        if supersedes(record, self._latest.get(record.input)):
            self._latest[record.input] = record

    def get(self, job_rel: str | PurePath) -> FileRecord | None:
        return self._latest.get(rel_key(job_rel))

    def records(self) -> list[FileRecord]:
        """One record per input: its current state."""
        return list(self._latest.values())

    def __len__(self) -> int:
        return len(self._latest)

    def __contains__(self, job_rel: object) -> bool:
        return isinstance(job_rel, (str, PurePath)) and rel_key(job_rel) in self._latest

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
            return decide_failed(rec, Path(input_path), retry_failed)
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
        if not all(p.is_file() for p in page_files(Path(output_path), rec.pages)[1:]):
            return "do", REASON_OUTPUT_MISSING  # a page written one file each, deleted since
        return "skip", REASON_DONE


def decide_failed(rec: FileRecord, input_path: Path, retry_failed: bool) -> tuple[Action, str]:
    """A previously failed input: redone when it changed or its failure kind was about
    something other than the scan; otherwise only with --retry-failed."""
    if not _same_file(input_path, rec.input_size, rec.input_mtime, rec.input_sha256):
        return "do", REASON_INPUT_CHANGED
    kind = rec.failure_kind
    if kind in RETRIED_BY_DEFAULT:
        return "do", REASON_FAILED_OUTPUT if kind.value in ("disk full", "output side") else REASON_FAILED_TRANSIENT
    return ("do" if retry_failed else "skip"), REASON_FAILED
