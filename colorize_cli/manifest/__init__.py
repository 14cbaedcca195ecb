"""The run manifest: an append-only JSON Lines record of what each run did to each file.

Record types (one JSON object per line; fields and types in :data:`records.SCHEMA`):

* ``{"type": "run", ...}``   one header per run: tool version, model and its sha256, settings.
* ``{"type": "file", ...}``  one per input the run touched, see :class:`FileRecord`.
* ``{"type": "end", ...}``   optional footer with the run's counts and whether it was interrupted.

One module per job:

* :mod:`.records`  the records, their schema and validation (the one place that defines them)
* :mod:`.store`    appending records durably, reading them back validated
* :mod:`.resume`   what a new run does with each input, and why
* :mod:`.merge`    joining shard manifests
* :mod:`.lock`     one writer per output folder
"""

from colorize_cli.manifest.lock import LockedError, RunLock, live_owners, lock_path
from colorize_cli.manifest.merge import MergeSummary, merge_manifests
from colorize_cli.manifest.records import (
    KINDS,
    SCHEMA,
    STATUSES,
    FileRecord,
    Status,
    count_statuses,
    end_record,
    manifest_path,
    new_run_id,
    path_problem,
    record_problem,
    run_header,
    settings_key,
    utc_now_iso,
)
from colorize_cli.manifest.resume import Action, Decision, Reason, ResumeIndex
from colorize_cli.manifest.store import ManifestWriter, read_manifest
from colorize_cli.io.fsutil import sha256_file

__all__ = [
    "KINDS", "SCHEMA", "STATUSES", "Action", "FileRecord", "LockedError", "ManifestWriter", "MergeSummary", "Decision", "Reason", "ResumeIndex", "RunLock", "Status", "count_statuses", "end_record", "live_owners",
    "lock_path", "manifest_path", "merge_manifests", "new_run_id", "path_problem", "read_manifest",
    "record_problem", "run_header", "settings_key", "sha256_file", "utc_now_iso",
]
