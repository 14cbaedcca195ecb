"""Commands that check and time the install: doctor, bench."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from colorize_cli.cli.common import quiet_openmp


def doctor(
    weights: Optional[Path] = typer.Option(None, help="Weights file to check (default: the shipped model)."),
    batch_size: int = typer.Option(8, help="Tiles/images per network call, as in colorize-dir."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check the install: versions, devices, the weights' sha256, and the same colours on every device as on the CPU."""
    quiet_openmp()
    from colorize_cli.doctor.printout import print_report  # noqa: PLC0415

    raise typer.Exit(print_report(weights, batch_size, json_out))


def bench(
    scans: Optional[Path] = typer.Option(None, help="Folder of scans to time (default: generate them)."),
    count: int = typer.Option(32, help="How many scans to generate."),
    megapixels: float = typer.Option(6.0, help="Size of each generated scan."),
    seed: int = typer.Option(0),
    weights: Optional[Path] = typer.Option(None, help="Weights file (default: the shipped model)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps"),
    render_size: int = typer.Option(0, help="Long side the network sees (0: the model's default)."),
    upsample: str = typer.Option("guided", help="guided | bilinear"),
    tta: bool = typer.Option(False, "--tta", help="Time colorize-dir --tta (flip averaging)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Output format (default: same as input)."),
    quality: int = typer.Option(92),
    batch_size: int = typer.Option(8),
    repeats: int = typer.Option(1, help="Run the phases this many times, interleaved; the best is kept."),
    stages: bool = typer.Option(False, "--stages", help="Also time each step of one file at a time."),
    max_ratio: Optional[float] = typer.Option(None, help="Exit 1 when end-to-end / I/O floor exceeds this."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    lengths: str = typer.Option("8,32", help="Two run lengths n,m for colorize-dir's steady-state and whole-run ratios ('' skips)."),
) -> None:
    """Time end to end against the I/O floor (decode + encode, no model) and the network alone, in one run."""
    quiet_openmp()
    from colorize_cli.bench import bench_main  # noqa: PLC0415

    raise typer.Exit(bench_main(scans=scans, count=count, megapixels=megapixels, seed=seed, weights=weights, device=device,
                                render_size=render_size, upsample=upsample, tta=tta, fmt=fmt, quality=quality, batch_size=batch_size,
                                repeats=repeats, stages=stages, json_out=json_out, max_ratio=max_ratio,
                                lengths=[int(n) for n in lengths.split(",") if n.strip()]))
