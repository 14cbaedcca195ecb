"""Commands on a finished run: the review sheet, and joining shard manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def report(
    out: Path = typer.Argument(..., help="Output folder of a finished run."),
    manifest: Optional[Path] = typer.Option(None, help="Manifest (default: <out>/manifest.jsonl)."),
    input_root: Optional[Path] = typer.Option(None, "--input", help="Folder of the originals, for the full-size view (default: as the run recorded it)."),
) -> None:
    """Write <out>/report.html, a review sheet, from a run's manifest and thumbnails."""
    from colorize_cli.report.sheet import write_report  # noqa: PLC0415

    path = write_report(out, manifest or out / "manifest.jsonl", input_root=input_root)
    typer.echo(str(path))


def manifest_merge(
    shards: list[Path] = typer.Argument(..., help="Shard manifests (manifest.K-of-N.jsonl)."),
    out: Path = typer.Option(..., "--out", "-o", help="Merged manifest, e.g. <out>/manifest.jsonl."),
) -> None:
    """Combine shard manifests into one, so an unsharded rerun or `colorize report` sees every shard's work."""
    from colorize_cli.cli.terminal import merge_command  # noqa: PLC0415

    raise typer.Exit(merge_command(shards, out))
