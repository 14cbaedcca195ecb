"""The `colorize-dir` run as the CLI drives it: load, run with a display, summarise, exit code."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import typer
from rich.console import Console

from .api import load_model, run
from .devices import DeviceError
from .engine import RunResult
from .manifest import FileRecord, LockedError
from .models.weights import WeightsError
from .plan import Plan
from .progress import RunDisplay, summary_table
from .settings import RunSettings


def summarise(result: RunResult, plan: Plan | None) -> dict:
    secs = max(result.seconds, 1e-9)
    return {
        "counts": dict(result.counts),
        "seconds": round(result.seconds, 3),
        "images_per_s": round(result.counts["done"] / secs, 3),
        "megapixels_per_s": round(result.megapixels / secs, 3),
        "interrupted": result.interrupted,
        "disk_full": result.disk_full,
        "not_started": max(result.left, 0),
        "failures": [{"input": i, "reason": r} for i, r in result.failures],
        "manifest": str(plan.manifest) if plan else None,
        "exit_code": result.exit_code,
    }


def run_dir(settings: RunSettings, json_out: bool = False, argv: Sequence[str] = ()) -> int:
    """Returns the process exit code: 0 all done, 1 some failed, 2 could not start, 130 interrupted."""
    try:
        model = load_model(settings.weights, settings.runtime.device, settings.runtime.fp32)
    except (WeightsError, DeviceError) as e:
        typer.echo(f"colorize-dir: error: {e}", err=True)
        return 2
    mode = "quiet" if settings.quiet else ("bar" if sys.stderr.isatty() else "lines")
    holder: dict[str, object] = {}

    def on_plan(plan: Plan) -> None:
        holder["plan"] = plan
        holder["display"] = RunDisplay(len(plan.todo), mode)

    def on_file(rec: FileRecord) -> None:
        display = holder.get("display")
        if isinstance(display, RunDisplay):
            display.file(rec)

    try:
        result = run(settings, model, on_file=on_file, argv=argv, on_plan=on_plan)
    except LockedError as e:
        typer.echo(f"colorize-dir: error: {e}", err=True)
        return 2
    finally:
        display = holder.get("display")
        if isinstance(display, RunDisplay):
            display.close()
    summary = summarise(result, holder.get("plan"))  # type: ignore[arg-type]
    if json_out:
        typer.echo(json.dumps(summary, indent=1))
    if not settings.quiet:
        err = Console(stderr=True)
        err.print(summary_table(summary))
        if result.interrupted:
            err.print(f"interrupted: rerun the same command to finish the files that are left")
        if result.disk_full:
            err.print("[red]disk full:[/red] stopped starting new files; what is done is kept. Free space and rerun.")
        if result.failures:
            err.print(f"{len(result.failures)} file(s) failed; reasons are in {summary['manifest']}")
    return result.exit_code
