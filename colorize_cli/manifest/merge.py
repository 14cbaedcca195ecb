"""Joining shard manifests into one, so an unsharded rerun or the report sees every shard's work."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colorize_cli.io.fsutil import atomic_output

from colorize_cli.manifest.records import FileRecord, encode_line
from colorize_cli.manifest.resume import supersedes
from colorize_cli.manifest.store import read_manifest


@dataclass(frozen=True)
class MergeSummary:
    """What :func:`merge_manifests` wrote."""

    runs: int  # header, footer and other non-file records kept
    files: int  # file records after de-duplication (one per input)
    bad_lines: int  # corrupt or invalid lines skipped across all inputs


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
    for path in paths:
        for rec in read_manifest(path, bad):  # validated: invalid records never reach the merge
            if rec.get("type") != "file":
                headers.append(rec)
                continue
            parsed = FileRecord.from_valid(rec)
            if supersedes(parsed, kept.get(parsed.input)):
                kept[parsed.input] = parsed
                files[parsed.input] = rec

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dest) as f:
        for rec in headers:
            f.write(encode_line(rec))
        for rec in files.values():
            f.write(encode_line(rec))
    return MergeSummary(runs=len(headers), files=len(files), bad_lines=len(bad))
