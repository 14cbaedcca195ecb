"""Printing `colorize doctor`'s findings: a table for people, JSON for scripts, an exit code for both."""

from __future__ import annotations

from colorize_cli.models.paths import SHIPPED_WEIGHTS_LICENCE

import json
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from colorize_cli.doctor.checks import TOLERANCE, diagnose


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def print_report(weights: Path | None, batch_size: int, json_out: bool) -> int:
    """Run the checks and print them; 0 when all is well, 1 with the reasons when not."""
    report = diagnose(weights, batch_size)
    if json_out:
        print(json.dumps({**asdict(report), "problems": report.problems, "tolerance": TOLERANCE}, indent=1))
        return 1 if report.problems else 0
    console = Console()
    console.print(f"colorize-cli {report.package}  python {report.python}  torch {report.torch}  "
                  f"CUDA {report.cuda or 'none'}  cuDNN {report.cudnn or 'none'}  MPS {'yes' if report.mps else 'no'}")
    console.print(f"platform {report.platform}")
    sha = report.weights_sha256
    console.print(f"weights {report.weights}: " + (f"sha256 {sha} verified" if sha else f"[red]{report.weights_problem}[/red]"))
    if report.model_family:
        console.print(f"model: {report.model_family}, {report.model_parameters / 1e6:.1f} M parameters; its weights: {report.model_licence}")
    console.print(f"licence: code Apache-2.0; the shipped weights: {SHIPPED_WEIGHTS_LICENCE}")
    if not report.devices:
        console.print(f"[red]problem:[/red] {report.problems[0]}")
        return 1
    table = Table(title=f"Devices: test image 512x384, compared with the CPU's result (tolerance {TOLERANCE} code values)")
    table.add_column("check")
    for d in report.devices:
        table.add_column(d.device, justify="right")
    rows = [
        ("name", lambda d: d.name),
        ("memory GiB", lambda d: _num(d.memory_gib, ".1f")),
        ("autocast dtype", lambda d: d.autocast),
        ("batch size", lambda d: str(d.batch_size)),
        ("s per test image", lambda d: _num(d.seconds_per_test_image, ".3f")),
        ("mean |diff| vs CPU", lambda d: _num(d.mean_abs_diff_vs_cpu, ".3f")),
        ("max |diff| vs CPU", lambda d: "-" if d.max_abs_diff_vs_cpu is None else str(d.max_abs_diff_vs_cpu)),
        ("img/s at 6 MP (in memory)", lambda d: _num(d.images_per_s_6mp, ".2f")),
        ("peak GPU memory MiB", lambda d: _num(d.peak_gpu_memory_mib, ".0f")),
        ("status", lambda d: f"[red]{d.problem}[/red]" if d.problem else "ok"),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(d) for d in report.devices))
    console.print(table)
    if report.problems:
        for p in report.problems:
            console.print(f"[red]problem:[/red] {p}")
        return 1
    console.print("all checks passed")
    return 0
