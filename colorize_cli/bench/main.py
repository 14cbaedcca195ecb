"""`colorize bench`: the command, from its options to the printed table or JSON and the exit status."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from colorize_cli.settings import ColorSettings, OutputSettings, RuntimeSettings
from colorize_cli.bench.phases import PHASES
from colorize_cli.bench.runs import run_bench
from colorize_cli.bench.scans import make_scans, scans_in
from colorize_cli.bench.spec import BenchError, BenchSettings
from colorize_cli.bench.table import bench_table, summary_lines


def bench_main(
    scans: Path | None = None,
    count: int = 20,
    megapixels: float = 6.0,
    seed: int = 0,
    weights: Path | None = None,
    device: str = "auto",
    render_size: int = 0,
    upsample: str = "guided",
    tta: bool = False,
    fmt: str | None = None,
    quality: int = 92,
    batch_size: int = 8,
    repeats: int = 1,
    stages: bool = False,
    json_out: bool = False,
    workdir: Path | None = None,
    max_ratio: float | None = None,
    phases: Sequence[str] = PHASES,
    lengths: Sequence[int] = (),
) -> int:
    """`colorize bench`. Benchmarks the scans under `scans`, or `count` generated gray JPEGs of
    `megapixels` each. Prints a table (or JSON with json_out). Returns the exit status: 0, or 1
    when end_to_end/io_floor exceeds `max_ratio`, or 2 when the benchmark cannot run. With `lengths`
    (n, m), at least m scans are generated. On CUDA the steps are timed too, for their shares."""
    from rich.console import Console  # noqa: PLC0415

    err = Console(stderr=True)
    settings = BenchSettings(
        weights=weights,
        color=ColorSettings(render_size=render_size, upsample=upsample, tta=tta),
        output=OutputSettings(format=fmt.lower() if fmt else None, quality=quality),
        runtime=RuntimeSettings(device=device, batch_size=batch_size),
    )
    try:
        with tempfile.TemporaryDirectory(prefix="colorize-bench-scans-", dir=workdir) as tmp:
            if scans is None:
                if not json_out:
                    err.print(f"generating {count} gray JPEG scans of {megapixels:g} MP ...")
                files = make_scans(Path(tmp), max([count, *lengths]), megapixels, seed)
            else:
                if not scans.is_dir():
                    raise BenchError(f"{scans} is not a folder")
                files = scans_in(scans)
            result = run_bench(files, settings, repeats=repeats, phases=phases, stages=stages or device.startswith("cuda"),
                               workdir=workdir, lengths=lengths)
    except Exception as e:  # noqa: BLE001 - one clear line, as every command does
        err.print(f"colorize bench: error: {e}", markup=False, highlight=False)
        return 2
    ratio = result["ratios"].get("end_to_end/io_floor")
    if json_out:
        print(json.dumps(result, indent=1))
    else:
        Console().print(bench_table(result))
        for line in summary_lines(result):
            Console().print(line, markup=False, highlight=False)
    return 1 if max_ratio is not None and ratio is not None and ratio > max_ratio else 0
