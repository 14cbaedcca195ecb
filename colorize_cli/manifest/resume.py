"""Resume decisions: from the manifest(s), what a new run must do with each input, and why.

Rules (:meth:`ResumeIndex.decide`), the last record per input wins:

* default          redo everything that is not validly done. A failed file is redone when its
                   input changed (size or mtime moved and its bytes differ), or when its failure
                   kind says nothing about the scan (``failures.RETRIED_BY_DEFAULT``: disk full,
                   output side, vanished, unreadable, changed while read, interrupted, internal):
                   the message told the user to fix that and rerun. A scan that failed for what
                   it is (corrupt, truncated, unsupported, too large, crashed its worker) and has
                   not changed is not re-attempted on every run.
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
from enum import Enum
from typing import Any, NamedTuple

from colorize_cli.failures import RETRIED_BY_DEFAULT, Kind
from colorize_cli.io.fsutil import sha256_file
from colorize_cli.discover.outnames import page_files

from colorize_cli.manifest.records import FileRecord, rel_key
from colorize_cli.manifest.store import read_manifest

log = logging.getLogger("colorize_cli.manifest")

class Action(str, Enum):
    """What a run does with one input."""

    DO = "do"
    SKIP = "skip"


class Reason(str, Enum):
    """Why, as --dry-run, the progress log and skip records say it."""

    NEW = "new"
    ALREADY_DONE = "already done"
    INPUT_CHANGED = "input changed"
    SETTINGS_CHANGED = "settings changed"
    OUTPUT_MISSING = "output missing"
    OUTPUT_CHANGED = "output changed"
    FAILED = "previously failed"
    OVERWRITE = "overwrite requested"
    FAILED_OUTPUT = "previously failed writing its output"
    FAILED_TRANSIENT = "previously failed for a reason outside the scan"
    NOT_A_FAILURE = "not a previous failure (--retry-failed processes only previous failures)"
    LISTED = "listed in --only-from"

    def __str__(self) -> str:
        return self.value


class Decision(NamedTuple):
    """A resume decision; compares equal to the plain ("do", "new") pair it stands for."""

    action: Action
    why: Reason


def supersedes(new: FileRecord, old: FileRecord | None) -> bool:
    """Last record wins, except that a "skipped" record never hides a real outcome: a resume run
    that logs "skipped: already done" must not make the next run forget the file is done."""
    if old is None:
        return True
    return not (new.status == "skipped" and old.status in ("done", "failed"))


def _same_file(
    path: Path, size: int | None, mtime: float | None, sha256: str | None, follow: bool = True
) -> bool | None:
    """True if ``path`` still holds the recorded content, False if not, None if it is missing.

    Cheap first: equal size and mtime are trusted; a different size is a change; only an
    equal size with a moved mtime (touch, copy, restore from backup) costs a hash. With
    ``follow`` False (outputs) a symlink is never followed, opened or hashed: it is not an output.
    """
    try:
        st = os.stat(path) if follow else os.lstat(path)
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
        return sha256_file(path, follow=follow) == sha256
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
    ) -> Decision:
        """What to do with one job, and why; see the module docstring."""
        if overwrite:
            return Decision(Action.DO, Reason.OVERWRITE)
        rec = self.get(job_rel)
        if rec is not None and rec.status == "failed":
            return decide_failed(rec, Path(input_path), retry_failed)
        action, reason = self._decide_not_failed(rec, Path(input_path), settings_key, output_path)
        if retry_failed and action is Action.DO:
            return Decision(Action.SKIP, Reason.NOT_A_FAILURE)
        return Decision(action, reason)

    @staticmethod
    def _decide_not_failed(
        rec: FileRecord | None,
        input_path: Path,
        key: str,
        output_path: str | os.PathLike[str] | None,
    ) -> Decision:
        if rec is None or rec.status != "done":
            return Decision(Action.DO, Reason.NEW)
        if rec.settings_key != key:
            return Decision(Action.DO, Reason.SETTINGS_CHANGED)
        if not _same_file(input_path, rec.input_size, rec.input_mtime, rec.input_sha256):
            return Decision(Action.DO, Reason.INPUT_CHANGED)
        if output_path is None:
            return Decision(Action.DO, Reason.OUTPUT_MISSING)
        same_output = _same_file(
            Path(output_path), rec.output_size, rec.output_mtime, rec.output_sha256, follow=False
        )
        if same_output is None:
            return Decision(Action.DO, Reason.OUTPUT_MISSING)
        if not same_output:
            return Decision(Action.DO, Reason.OUTPUT_CHANGED)
        if not all(p.is_file() and not p.is_symlink() for p in page_files(Path(output_path), rec.pages)[1:]):
            return Decision(Action.DO, Reason.OUTPUT_MISSING)  # a page written one file each, deleted since
        return Decision(Action.SKIP, Reason.ALREADY_DONE)


def decide_failed(rec: FileRecord, input_path: Path, retry_failed: bool) -> Decision:
    """A previously failed input: redone when it changed or its failure kind was about
    something other than the scan; otherwise only with --retry-failed."""
    if not _same_file(input_path, rec.input_size, rec.input_mtime, rec.input_sha256):
        return Decision(Action.DO, Reason.INPUT_CHANGED)
    kind = rec.failure_kind
    if kind in RETRIED_BY_DEFAULT:
        return Decision(Action.DO, Reason.FAILED_OUTPUT if kind in (Kind.DISK_FULL, Kind.OUTPUT_SIDE) else Reason.FAILED_TRANSIENT)
    return Decision(Action.DO if retry_failed else Action.SKIP, Reason.FAILED)
