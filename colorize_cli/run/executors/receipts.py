"""Ray workers' receipts: each worker appends its records to a file beside the manifest
(`.<manifest>.receipts/<run_id>/`), removed when the driver has them all; if the driver dies
first, the next run adopts the receipts' done records before planning, so outputs finished after
the driver's death (atomic renames: whole or absent) are not redone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from colorize_cli.manifest import FileRecord, ManifestWriter, ResumeIndex, read_manifest


def receipts_root(manifest: Path) -> Path:
    return manifest.with_name(f".{manifest.name}.receipts")


def adopt_receipts(manifest: Path) -> int:
    """Append to the manifest the done records of earlier runs whose driver died before it got
    them (from their workers' receipts); returns how many. A record already in the manifest, or
    superseded there by a later run, is left out. Failed records are not adopted: redoing a
    failure costs little, and an orphan worker's failure may have been caused by this run."""
    root = receipts_root(manifest)
    if not root.is_dir():
        return 0
    index = ResumeIndex.load(manifest)
    adopted = 0
    with ManifestWriter(manifest) as writer:
        for run_dir in sorted(root.iterdir()):
            # Claimed by a rename first: a worker of that run still alive cannot open new receipts here.
            claimed = run_dir if run_dir.name.endswith(".adopting") else run_dir.with_name(run_dir.name + ".adopting")
            try:
                os.replace(run_dir, claimed)
            except OSError:
                continue
            for receipt in sorted(claimed.glob("*.jsonl")):
                for raw in read_manifest(receipt):
                    try:
                        rec = FileRecord.from_dict(raw)
                    except (TypeError, ValueError):
                        continue
                    latest = index.get(rec.input)
                    if rec.status != "done" or (latest is not None and (latest.run_id or "") >= (rec.run_id or "")):
                        continue
                    writer.write(rec)
                    index.add(rec)
                    adopted += 1
            shutil.rmtree(claimed, ignore_errors=True)
    remove_if_empty(root)
    return adopted


def remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
