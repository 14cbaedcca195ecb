"""What a command does in the terminal around a library call: messages, the progress display,
the summary, the exit code. For `colorize-dir` (load, run, summarise) and `colorize manifest
merge` (join shard manifests)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import typer
from rich.console import Console

from colorize_cli.errors import DeviceError, WeightsError
from colorize_cli.run.session import RunResult
from colorize_cli.failures import is_disk_full
from colorize_cli.run.interrupts import StopFlag
from colorize_cli.manifest import FileRecord, LockedError, merge_manifests
from colorize_cli.run.plan import Plan
from colorize_cli.cli.progress import RunDisplay, summary_table
from colorize_cli.run.engine import run
from colorize_cli.run.executors.ray import RayEngineError
from colorize_cli.settings import RunSettings


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
        "manifest_error": result.manifest_error,
        "stale_temps_removed": result.stale_temps,
        "failures": [{"input": f.input, "kind": f.kind.value, "reason": f.reason} for f in result.failures],
        "previously_failed": result.previously_failed,
        "skip_reasons": skip_reasons(plan) if plan else {},
        "manifest": str(plan.manifest) if plan else None,
        "exit_code": result.exit_code,
    }


def skip_reasons(plan: Plan) -> dict[str, int]:
    """How many inputs this run left alone, per reason (not images, already done, ...)."""
    counts: dict[str, int] = {}
    for why in [str(w) for _, w in plan.skip] + [s.reason for s in plan.not_images]:
        counts[why] = counts.get(why, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def run_dir(settings: RunSettings, json_out: bool = False, argv: Sequence[str] = (), stop: StopFlag | None = None) -> int:
    """Returns the process exit code: 0 all done, 1 some failed or the disk is full, 2 could not
    start, 130 interrupted. ``stop`` is the CLI's signal policy (interrupts.py), if it set one."""
    mode = "quiet" if settings.quiet else ("bar" if sys.stderr.isatty() else "lines")
    holder: dict[str, object] = {}

    def on_plan(plan: Plan) -> None:
        holder["plan"] = plan
        if plan.not_found:  # --only-from names files the walk did not find: moved, renamed, another INPUT?
            shown = ", ".join(plan.not_found[:5]) + (f" and {len(plan.not_found) - 5} more" if len(plan.not_found) > 5 else "")
            typer.echo(f"colorize-dir: warning: {len(plan.not_found)} file(s) of --only-from not found under "
                       f"{settings.input_root}: {shown}", err=True)
        holder["display"] = RunDisplay(len(plan.todo), mode)

    def on_file(rec: FileRecord) -> None:
        display = holder.get("display")
        if isinstance(display, RunDisplay):
            display.file(rec)

    try:
        result = run(settings, on_file=on_file, argv=argv, on_plan=on_plan, stop=stop)
    except (WeightsError, DeviceError, RayEngineError, LockedError) as e:
        typer.echo(f"colorize-dir: error: {e}", err=True)
        return 2
    except OSError as e:  # e.g. the output folder, its lock or its manifest cannot be created
        where = f"{e.filename or settings.out_root}: {e.strerror or e}"
        if is_disk_full(e):  # not a usage error: free space and rerun
            typer.echo(f"colorize-dir: error: disk full: {where}; free space and rerun", err=True)
            return 1
        typer.echo(f"colorize-dir: error: {where}", err=True)
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
            left = f"{result.left} file(s) not started" if result.left >= 0 else "files are left"
            err.print(f"interrupted: {left}; rerun the same command to finish them")
        if result.manifest_error:
            err.print(f"[red]{result.manifest_error}[/red]: stopped; files without a record are redone next run")
        if result.disk_full:
            err.print("[red]disk full:[/red] stopped starting new files; what is done is kept. Free space and rerun.")
        for why, n in summary["skip_reasons"].items():
            err.print(f"skipped {n}: {why}", markup=False, highlight=False)
        plan = holder.get("plan")
        if isinstance(plan, Plan) and not plan.todo and not plan.skip and not result.interrupted:
            err.print(f"nothing to do: no images found in {settings.input_root}", markup=False, highlight=False)
        if result.failures:
            err.print(f"{len(result.failures)} file(s) failed; reasons are in {summary['manifest']}")
        if result.previously_failed:
            err.print(f"{result.previously_failed} file(s) still failed from an earlier run (unchanged since, so not retried; "
                      f"--retry-failed tries them again); reasons are in {summary['manifest']}", markup=False, highlight=False)
    if result.lost:  # the cluster went away: what was done is recorded; a rerun does the rest
        typer.echo(f"colorize-dir: stopped: {result.lost}; {max(result.left, 0)} file(s) not started; rerun the same command to finish them", err=True)
    return result.exit_code


def merge_command(paths: Sequence[Path], dest: Path) -> int:
    """`colorize manifest merge SHARD... --out DEST`: one manifest from the shards' manifests,
    so an unsharded rerun (or `colorize report`) sees every shard's work. An existing DEST is
    merged in first (the shards' records win), never thrown away. Returns the exit code."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        typer.echo(f"colorize manifest merge: error: not found: {', '.join(missing)}", err=True)
        return 2
    sources = [Path(p) for p in paths]
    if Path(dest).is_file() and Path(dest) not in sources:  # keep what an earlier run recorded there
        sources.insert(0, Path(dest))
    summary = merge_manifests(sources, dest)
    typer.echo(f"{dest}: {summary.files} file record(s) from {len(paths)} manifest(s), {summary.runs} run record(s)"
               + (f"; {summary.bad_lines} corrupt line(s) skipped" if summary.bad_lines else ""))
    return 0
