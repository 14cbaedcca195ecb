"""`colorize-dir` (also `colorize dir`): every option parsed and checked here, before torch loads; cli.terminal then runs it."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from colorize_cli.cli.common import VERSION, quiet_openmp

# colorize-dir --help groups its options by what a user is deciding.
_READ = "What to read"
_COLOUR = "How to colour"
_WRITE = "What to write"
_RUNS = "Resume and runs"
_SPEED = "Performance"


def colorize_dir(
    input_root: Path = typer.Argument(..., help="Folder of scans (walked recursively).", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder; the input's tree is mirrored here.", rich_help_panel=_WRITE),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps (auto: cuda, then mps, then cpu).", rich_help_panel=_SPEED),
    weights: Optional[Path] = typer.Option(None, help="Weights file: ours, or an upstream DDColor, ECCV'16 or SIGGRAPH'17 checkpoint (.pth, .pt, .safetensors; default: the shipped model).", rich_help_panel=_COLOUR),
    model: Optional[str] = typer.Option(None, "--model", help="The --weights file's family, when its keys do not tell: chromanet | ddcolor | eccv16 | siggraph17 (default: detected).", rich_help_panel=_COLOUR),
    render_size: int = typer.Option(0, help="Long side the network sees, px (0: the model's default).", rich_help_panel=_COLOUR),
    tile_size: int = typer.Option(512, help="Working images larger than this are tiled, px.", rich_help_panel=_COLOUR),
    tile_overlap: int = typer.Option(64, help="Overlap between tiles, px.", rich_help_panel=_COLOUR),
    batch_size: int = typer.Option(8, help="Tiles/images per network call.", rich_help_panel=_SPEED),
    fp32: bool = typer.Option(False, "--fp32", help="No half-precision autocast on CUDA.", rich_help_panel=_SPEED),
    saturation: float = typer.Option(1.0, help="Scale of the predicted chroma.", rich_help_panel=_COLOUR),
    upsample: str = typer.Option("guided", help="Chroma upsampling: guided (edge-aware) | bilinear.", rich_help_panel=_COLOUR),
    tta: bool = typer.Option(False, "--tta", help="Also colour the mirror image and average the two (twice the network time).", rich_help_panel=_COLOUR),
    fmt: Optional[str] = typer.Option(None, "--format", help="jpeg | png | tiff | webp | jp2 (default: same as input, or TIFF).", rich_help_panel=_WRITE),
    quality: int = typer.Option(92, help="JPEG/WebP quality.", rich_help_panel=_WRITE),
    suffix: str = typer.Option("", help="Appended to each output file's name (before the extension).", rich_help_panel=_WRITE),
    bit_depth: str = typer.Option("same", help="8 | 16 | same (16-bit needs PNG, TIFF or JPEG 2000 output).", rich_help_panel=_WRITE),
    tiff_compression: str = typer.Option("lzw", help="TIFF output, lossless: lzw | deflate (zlib's fastest level) | none.", rich_help_panel=_WRITE),
    keep_times: bool = typer.Option(False, "--keep-times", help="Copy each input's modification time to its output.", rich_help_panel=_WRITE),
    include: list[str] = typer.Option([], help="Only files matching this glob (repeatable).", rich_help_panel=_READ),
    exclude: list[str] = typer.Option([], help="Skip files/folders matching this glob (repeatable).", rich_help_panel=_READ),
    follow_symlinks: bool = typer.Option(True, help="Follow symlinks (never in loops).", rich_help_panel=_READ),
    allow_outside_root: bool = typer.Option(False, help="Follow symlinks that lead outside the input folder.", rich_help_panel=_READ),
    manifest: Optional[Path] = typer.Option(None, help="Manifest path (default: <out>/manifest.jsonl).", rich_help_panel=_RUNS),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every file, even those already done.", rich_help_panel=_RUNS),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Process only files that failed before.", rich_help_panel=_RUNS),
    only_from: Optional[Path] = typer.Option(None, "--only-from", help="Redo only the files this list names, even if done (paths relative to INPUT, one a line, or a .json list: the review sheet's reject list).", rich_help_panel=_RUNS),
    shard: Optional[str] = typer.Option(None, help="K/N: process only shard K of N (stable hash of the path).", rich_help_panel=_RUNS),
    max_pixels: int = typer.Option(250_000_000, help="Refuse images with more pixels than this.", rich_help_panel=_READ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be done and why; load no model.", rich_help_panel=_RUNS),
    report: bool = typer.Option(False, "--report", help="Also write <out>/report.html, a review sheet.", rich_help_panel=_WRITE),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output.", rich_help_panel=_RUNS),
    json_out: bool = typer.Option(False, "--json", help="Print a machine-readable summary on stdout.", rich_help_panel=_RUNS),
    version: bool = VERSION,
    engine: str = typer.Option("local", help="local (this machine) | ray (a Ray cluster; pip install \"colorize-cli[ray]\").", rich_help_panel=_SPEED),
    ray_address: Optional[str] = typer.Option(None, help="--engine ray: 'auto' or host:port joins a running cluster (default: start a local one).", rich_help_panel=_SPEED),
    workers: Optional[str] = typer.Option(None, help="--engine ray: N workers, or N-M to grow with an autoscaling cluster (default: as many as fit).", rich_help_panel=_SPEED),
    cpus_per_worker: float = typer.Option(1.0, help="--engine ray: CPUs each worker reserves (also its torch threads).", rich_help_panel=_SPEED),
    gpus_per_worker: float = typer.Option(0.0, help="--engine ray: GPUs each worker reserves; fractions share a GPU (0.25: four per GPU).", rich_help_panel=_SPEED),
    max_retries: int = typer.Option(2, help="--engine ray: retries of a file whose worker died while processing it.", rich_help_panel=_SPEED),
    lost_after: float = typer.Option(60.0, help="--engine ray: seconds without an answer from any worker (every worker, a node or the head lost) before the run stops with exit 1.", rich_help_panel=_SPEED),
) -> None:
    """Colorize every scan under INPUT_ROOT into --out, mirroring the folder tree.

    Exit codes: 0 all done, 1 some files failed, 2 usage error, 130 interrupted."""
    import sys  # noqa: PLC0415

    from colorize_cli.errors import UsageError  # noqa: PLC0415
    from colorize_cli.discover.shards import parse_shard  # noqa: PLC0415
    from colorize_cli.settings import ColorSettings, OutputSettings, RunSettings, RuntimeSettings  # noqa: PLC0415

    def usage(msg: str) -> None:
        typer.echo(f"colorize-dir: error: {msg}", err=True)
        raise typer.Exit(2)

    _FINISHED.clear()  # a new run in this process: no result yet

    if upsample not in ("guided", "bilinear"):
        usage(f"--upsample must be guided or bilinear, not {upsample!r}")
    if bit_depth not in ("8", "16", "same"):
        usage(f"--bit-depth must be 8, 16 or same, not {bit_depth!r}")
    if tiff_compression not in ("lzw", "deflate", "none"):
        usage(f"--tiff-compression must be lzw, deflate or none, not {tiff_compression!r}")
    from colorize_cli.discover.formats import OUT_FORMATS, SIXTEEN_BIT  # noqa: PLC0415

    if bit_depth == "16" and fmt and OUT_FORMATS.get(fmt.lower(), "PNG") not in SIXTEEN_BIT:
        usage(f"--bit-depth 16 needs PNG, TIFF or JPEG 2000 output: {fmt} holds 8 bits a channel")
    _check_numbers(usage, render_size=render_size, tile_size=tile_size, tile_overlap=tile_overlap, batch_size=batch_size,
                   saturation=saturation, quality=quality, max_pixels=max_pixels)
    if tile_overlap * 2 >= tile_size:
        usage(f"--tile-overlap {tile_overlap} must be less than half of --tile-size {tile_size}")
    if not _DEVICE.fullmatch(device.lower()):
        usage(f"--device must be auto, cpu, cuda, cuda:N or mps, not {device!r}")
    ray_settings = _ray_settings(engine, ray_address, workers, cpus_per_worker, gpus_per_worker, max_retries, usage, lost_after)
    only = _only_list(only_from, retry_failed, usage) if only_from is not None else None
    try:
        _check_paths(input_root, out, weights, fmt, suffix, exclude)
        settings = RunSettings(
            input_root=input_root, out_root=out, weights=weights, model_family=model, include=tuple(include), exclude=tuple(exclude),
            follow_symlinks=follow_symlinks, allow_outside_root=allow_outside_root,
            color=ColorSettings(render_size=render_size, tile_size=tile_size, tile_overlap=tile_overlap, saturation=saturation, upsample=upsample,
                                tta=tta),
            output=OutputSettings(format=fmt.lower() if fmt else None, quality=quality, suffix=suffix, bit_depth=bit_depth, keep_times=keep_times,
                                  tiff_compression=tiff_compression),
            runtime=RuntimeSettings(device=device, batch_size=batch_size, fp32=fp32, max_pixels=max_pixels),
            manifest=manifest, overwrite=overwrite, retry_failed=retry_failed, only=only,
            shard=parse_shard(shard) if shard else None, dry_run=dry_run, report=report, quiet=quiet,
            engine=engine, ray=ray_settings,
        )
        if dry_run:
            _dry_run(settings, json_out)
            return
        quiet_openmp()
        from colorize_cli.run.interrupts import StopFlag, handle_signals  # noqa: PLC0415

        with handle_signals(StopFlag()) as stop:  # SIGTERM too, from here on, while torch loads
            with _exit_at_once_on_signals():  # an exception raised inside torch's import breaks it
                from colorize_cli.cli.terminal import run_dir  # noqa: PLC0415

                if settings.engine == "local":  # torch, here; a Ray driver leaves it to its workers
                    import importlib  # noqa: PLC0415

                    importlib.import_module("colorize_cli.run.executors.local")

            code = run_dir(settings, json_out=json_out, argv=sys.argv, stop=stop)
            _FINISHED.append(code)  # from here on a signal changes nothing (exit_130_on_signals)
            late = stop.late_signal or (stop.reason if stop.by_signal and code != 130 else "")
            if late:
                typer.echo(f"colorize-dir: {late} came after the last file had started; the run finished, "
                           f"its result stands (exit {code})", err=True)
    except UsageError as e:
        usage(str(e))
    except KeyboardInterrupt as e:  # a signal that must stop at once (interrupts.py)
        name, phase = getattr(e, "signal", "SIGINT"), getattr(e, "phase", "starting")
        if phase == "finished":
            what = "after every file was finished (their records are in the manifest)"
        elif phase == "running":
            what = "while files were in flight; files without a record are redone next run"
        else:
            what = "before any file was started; rerun the same command to begin"
        typer.echo(f"colorize-dir: interrupted ({name}) {what}", err=True)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# option -> (least, most, what it accepts); None: no bound on that side. Checked before any file is
# touched and before torch loads: a bad value must never reach a file and fail it.
_RANGES: dict[str, tuple[float | None, float | None, str]] = {
    "render_size": (0, 16384, "0 (the model's default) or 32 to 16384 px"),
    "tile_size": (32, 16384, "32 to 16384 px"),
    "tile_overlap": (0, None, "0 or more px, less than half of --tile-size"),
    "batch_size": (1, 4096, "1 to 4096"),
    "saturation": (0, 10, "a number from 0 to 10"),
    "quality": (1, 100, "1 to 100"),
    "max_pixels": (1, None, "a pixel count of 1 or more"),
}


def _check_numbers(usage, **values: float) -> None:
    """Every numeric option inside what it accepts (finite, in range), named in the message."""
    for name, value in values.items():
        least, most, accepts = _RANGES[name]
        bad = not math.isfinite(value) or (least is not None and value < least) or (most is not None and value > most)
        if name == "render_size" and 0 < value < 32:
            bad = True
        if bad:
            usage(f"--{name.replace('_', '-')} {value}: accepts {accepts}")


def _check_paths(input_root: Path, out: Path, weights: Optional[Path], fmt: Optional[str], suffix: str, exclude: list[str]) -> None:
    """The folders, the weights file, --format and --suffix, before torch loads (UsageError)."""
    import os  # noqa: PLC0415

    from colorize_cli.discover.find import DiscoverOptions, check_out_root  # noqa: PLC0415
    from colorize_cli.errors import UsageError  # noqa: PLC0415

    if not os.path.isdir(input_root):
        what = "is not a folder" if os.path.exists(input_root) else "does not exist"
        raise UsageError(f"input folder {input_root} {what}")
    DiscoverOptions(out_format=fmt, suffix=suffix)  # raises on an unknown format or a bad suffix
    check_out_root(input_root, out, tuple(exclude))
    if weights is not None and not os.path.isfile(weights):
        raise UsageError(f"weights file not found: {weights}")


def _only_list(path: Path, retry_failed: bool, usage) -> frozenset[str]:
    """--only-from: the list read and checked (discover.listed); a missing, unreadable or bad list is a usage error."""
    from colorize_cli.discover.listed import read_list  # noqa: PLC0415
    from colorize_cli.errors import UsageError  # noqa: PLC0415

    if retry_failed:
        usage("--only-from and --retry-failed choose files two ways: use one")
    try:
        return read_list(path)
    except FileNotFoundError:
        usage(f"--only-from {path}: no such file")
    except IsADirectoryError:
        usage(f"--only-from {path}: is a folder, not a list file")
    except OSError as e:
        usage(f"--only-from {path}: cannot read it ({e.strerror or e})")
    except UsageError as e:
        usage(f"--only-from {path}: {e}")
    raise AssertionError("unreachable")


def _ray_settings(engine: str, address: Optional[str], workers: Optional[str], cpus: float, gpus: float, retries: int, usage,
                  lost_after: float = 60.0) -> object:
    """The --engine ray options, checked; each is refused with the local engine, where it would do nothing."""
    from colorize_cli.run.executors.ray import parse_workers  # noqa: PLC0415
    from colorize_cli.settings import RaySettings  # noqa: PLC0415

    if engine not in ("local", "ray"):
        usage(f"--engine must be local or ray, not {engine!r}")
    given = [name for name, value, default in (("--ray-address", address, None), ("--workers", workers, None),
                                                ("--cpus-per-worker", cpus, 1.0), ("--gpus-per-worker", gpus, 0.0),
                                                ("--max-retries", retries, 2), ("--lost-after", lost_after, 60.0)) if value != default]
    if engine == "local" and given:
        usage(f"{', '.join(given)} only apply with --engine ray")
    if not (math.isfinite(cpus) and cpus > 0):
        usage(f"--cpus-per-worker {cpus}: accepts a number above 0")
    if not (math.isfinite(gpus) and gpus >= 0):
        usage(f"--gpus-per-worker {gpus}: accepts a number, 0 or more")
    if retries < 0:
        usage(f"--max-retries {retries}: accepts 0 or more")
    if not (math.isfinite(lost_after) and lost_after > 0):
        usage(f"--lost-after {lost_after}: accepts a number of seconds above 0")
    try:
        span = parse_workers(workers) if workers else None
    except ValueError as e:
        usage(str(e))
    return RaySettings(address=address, workers=span, cpus_per_worker=cpus, gpus_per_worker=gpus, max_retries=retries, lost_after=lost_after)


def _dry_run(settings: object, json_out: bool) -> None:
    """What a run would do and why, without importing torch or loading weights."""
    import json  # noqa: PLC0415

    from colorize_cli.models.paths import DEFAULT_WEIGHTS  # noqa: PLC0415
    from colorize_cli.run.plan import model_ref, plan_run  # noqa: PLC0415

    plan = plan_run(settings, model_ref(settings.weights or DEFAULT_WEIGHTS))  # type: ignore[attr-defined]
    rows = [("do", j.rel.as_posix(), why) for j, why in plan.todo] + [("skip", j.rel.as_posix(), why) for j, why in plan.skip]
    rows += [("skip", s.rel.as_posix(), s.reason) for s in plan.not_images]
    if json_out:
        typer.echo(json.dumps({"todo": len(plan.todo), "skip": len(plan.skip) + len(plan.not_images),
                               "files": [{"action": a, "input": r, "why": w} for a, r, w in rows]}, indent=1))
        return
    for action, rel, why in sorted(rows, key=lambda r: r[1]):
        typer.echo(f"{action:4}  {rel}  ({why})")
    typer.echo(f"{len(plan.todo)} to do, {len(plan.skip) + len(plan.not_images)} to skip; manifest {plan.manifest}")


def exit_130_on_signals() -> None:
    """From the first moment of the process: SIGINT or SIGTERM exit 130 with a message (click
    would turn SIGINT into "Aborted!", exit 1; SIGTERM would kill silently, 143). A run replaces
    this with its own phase-aware handler (interrupts.py) as soon as its options are parsed."""
    import signal  # noqa: PLC0415

    def stop(signum: int, _frame: object) -> None:
        if _FINISHED:  # the run is over and its summary printed: its exit code stands
            typer.echo(f"colorize-dir: {signal.Signals(signum).name} after the run had finished: its result stands "
                       f"(exit {_FINISHED[-1]})", err=True)
            return
        typer.echo(f"colorize-dir: interrupted ({signal.Signals(signum).name}) before any file was started", err=True)
        raise SystemExit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


_FINISHED: list[int] = []  # the run's exit code, once it is known


@contextmanager
def _exit_at_once_on_signals() -> Iterator[None]:
    """While torch (a C extension, seconds long) is imported, a signal must not raise into the
    import: it aborted the process or left a half-imported module behind. Nothing has been
    created yet (no lock, no folder, no record), so the handler says so and exits 130 at once."""
    import os  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def now(signum: int, _frame: object) -> None:
        sys.stderr.write(f"colorize-dir: interrupted ({signal.Signals(signum).name}) before any file was started; "
                         "rerun the same command to begin\n")
        sys.stderr.flush()
        os._exit(130)

    old = {s: signal.signal(s, now) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def exit_now(code: object) -> None:
    """End the process with ``code`` without the interpreter's shutdown: a signal arriving while
    torch and its threads are torn down (a second or more) found no Python handler left and
    killed the process (143, or death by SIGINT) after a finished run. Streams are flushed first."""
    import logging  # noqa: PLC0415
    import os  # noqa: PLC0415

    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    try:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed pipe: nothing more to say
        pass
    os._exit(code)


def ignore_signals_once_finished() -> None:
    """For `colorize dir` (whose caller may go on after main()): once a run's result is known,
    SIGINT and SIGTERM are ignored through the interpreter's shutdown, so they cannot turn a
    finished run into a death by signal. `colorize-dir` ends at once instead (exit_now)."""
    import signal  # noqa: PLC0415

    if _FINISHED:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def dir_main() -> None:
    exit_130_on_signals()
    try:
        typer.run(colorize_dir)
    except SystemExit as e:
        if _FINISHED:  # a run's result is known and printed: end now, before a slow shutdown
            exit_now(e.code)
        raise
