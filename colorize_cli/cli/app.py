"""Command-line entry points. They parse options and call the library; nothing else lives here.

Heavy imports (torch, the engine) happen inside the commands, so `--help` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from colorize_cli.models import ARCHS

def _quiet_openmp() -> None:
    """Idle OpenMP threads sleep instead of spinning. Torch's threads share the cores with our
    decode/encode threads (and, on a shared machine, with others): spinning burned 2-3x the CPU
    time for the same work in our measurements. Must run before torch is imported."""
    import os  # noqa: PLC0415

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _version(value: bool) -> None:
    """--version: the package version and the shipped model, without importing torch."""
    if not value:
        return
    from colorize_cli import __version__  # noqa: PLC0415
    from colorize_cli.models.paths import DEFAULT_WEIGHTS  # noqa: PLC0415
    from colorize_cli.run.plan import model_ref  # noqa: PLC0415

    ref = model_ref(DEFAULT_WEIGHTS)
    typer.echo(f"colorize-cli {__version__}, model {ref.name} (sha256 {ref.sha256[:12]})")
    raise typer.Exit()


_VERSION = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and the model, then exit.")

app = typer.Typer(help="colorize-cli: give colour to scanned black-and-white photographs.", no_args_is_help=True, add_completion=False)


@app.callback()
def _main(version: bool = _VERSION) -> None:
    """colorize-cli: give colour to scanned black-and-white photographs."""


@app.command()
def doctor(
    weights: Optional[Path] = typer.Option(None, help="Weights file to check (default: the shipped model)."),
    batch_size: int = typer.Option(8, help="Tiles/images per network call, as in colorize-dir."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check the install: versions, devices, the weights' sha256, and the same colours on every device as on the CPU."""
    _quiet_openmp()
    from colorize_cli.doctor.printout import print_report  # noqa: PLC0415

    raise typer.Exit(print_report(weights, batch_size, json_out))


@app.command()
def train(
    data: list[Path] = typer.Argument(..., help="Folders of colour photos (searched recursively)."),
    out: Path = typer.Option(Path("runs/chromanet"), "--out", help="Run folder: checkpoint, log, exported weights."),
    arch: str = typer.Option("chromanet", help=" | ".join(a for a, spec in ARCHS.items() if spec.trainable)),
    cpu_minutes: float = typer.Option(60.0, help="Budget of process CPU time, minutes (all threads)."),
    batch: int = typer.Option(24, help="Crops per step."),
    crop: int = typer.Option(128, help="Training crop side, px."),
    min_scale: float = typer.Option(0.6, help="Smallest crop, as a fraction of the photo's short side, before it is resized to --crop."),
    lr: float = typer.Option(1e-3, help="Learning rate of the new layers."),
    holdout: int = typer.Option(300, help="Photos held out for validation."),
    seed: int = typer.Option(0),
    threads: int = typer.Option(0, help="Torch threads (0: all cores)."),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    pretrained: bool = typer.Option(True, help="Start the encoder from ImageNet weights."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's checkpoint."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from these weights (e.g. the shipped model), with a fresh optimizer."),
    ema: float = typer.Option(0.0, help="Decay of an exponential moving average of the weights, exported instead of the raw ones (0: off)."),
    marks: float = typer.Option(0.0, help="Probability of each kind of simulated physical damage (scratches, cracks, dust, folds, stains)."),
    freeze_fraction: float = typer.Option(0.15, help="Part of the budget with the pretrained encoder frozen."),
    encoder_lr: float = typer.Option(1e-4, help="Learning rate of the pretrained encoder once unfrozen."),
    warmup: int = typer.Option(0, help="Steps of linear learning-rate warm-up (use with --init)."),
    wall_minutes: float = typer.Option(0.0, help="Budget in wall-clock minutes instead of CPU time (for a GPU run; 0: off)."),
    workers: int = typer.Option(1, help="Processes cutting training crops (more keep a GPU fed; the order is reproducible for a given number)."),
    reg_loss: str = typer.Option("smooth-l1", help="ChromaNet's a*b* regression loss: smooth-l1 (the conditional median, v1) | mse (the conditional mean)."),
    weight_decay: float = typer.Option(0.0, help="AdamW's decoupled weight decay of the kernels (biases and norms are not decayed); 0: plain Adam."),
    feature_loss: float = typer.Option(0.0, help="Weight of a feature (perceptual) loss through a fixed ImageNet EfficientNet-Lite2 (ChromaNet only; 0: off, as v1)."),
    bf16: bool = typer.Option(False, "--bf16", help="Run the forward pass in bfloat16: faster on CPUs with AVX512-BF16 or AMX and on GPUs, many times slower on CPUs without them (measure with tools/time_encoders.py --bf16); validation stays float32."),
) -> None:
    """Train a colorization model on folders of colour photos."""
    _quiet_openmp()
    from colorize_cli.training.data import CropSettings  # noqa: PLC0415
    from colorize_cli.training.loop import TrainConfig, train as run_training  # noqa: PLC0415

    try:
        cfg = TrainConfig(
            data=tuple(str(d) for d in data), out=str(out), arch=arch, cpu_minutes=cpu_minutes, batch=batch,
            lr=lr, crop=CropSettings(size=crop, min_scale=min_scale, marks=marks), holdout=holdout, seed=seed, threads=threads, device=device,
            pretrained=pretrained, init=str(init or ""), ema=ema, freeze_fraction=freeze_fraction, encoder_lr=encoder_lr,
            warmup=warmup, wall_minutes=wall_minutes, workers=workers, reg_loss=reg_loss, weight_decay=weight_decay, bf16=bf16,
            feature_loss=feature_loss,
        )
        run_training(cfg, resume=resume, log=typer.echo)
    except ValueError as e:  # a setting that cannot work: --reg-loss, --feature-loss, --arch, --weight-decay, --init of another architecture
        typer.echo(f"colorize train: {e}", err=True)
        raise typer.Exit(2) from None


@app.command("eval")
def eval_cmd(
    photos: Path = typer.Argument(..., help="Folder of colour photos, or a text file listing them."),
    weights: list[Path] = typer.Option([], help="Weights file; repeat to compare models in one run (default: the shipped model)."),
    render_size: int = typer.Option(0, help="Long side the network sees (0: the model's default)."),
    upsample: str = typer.Option("guided", help="guided | bilinear"),
    limit: int = typer.Option(0, help="Only the first N photos (0: all)."),
    sheet: Optional[Path] = typer.Option(None, help="Write a before/after PNG of the best and worst images of the first model here."),
    tta: bool = typer.Option(False, "--tta", help="Score each model also with --tta (flip averaging), in the same run."),
    min_colourfulness: float = typer.Option(0.0, help="Only photos at least this colourful (Hasler-Suesstrunk M; 0: all)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Score models on colour photos turned gray, beside the gray baseline (a*b* = 0), in one run.

    Seconds are the wall time of each row's pass over the photos (network, upsampling, merge,
    scoring): compare them within a run, not across runs. Each row after the first model's is
    also compared with it photo by photo (PSNR and CIEDE2000: mean difference, 95 % interval)."""
    import json  # noqa: PLC0415
    import time  # noqa: PLC0415
    from dataclasses import asdict  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from colorize_cli.api import load_model  # noqa: PLC0415
    from colorize_cli.settings import ColorSettings  # noqa: PLC0415
    from colorize_cli.training.evaluate import contact_sheet, evaluate  # noqa: PLC0415
    from colorize_cli.training.metrics import paired_difference  # noqa: PLC0415

    truth = _held_out_photos("eval", photos, min_colourfulness, limit)
    rows, results, lines = [], [], []
    first = None  # the first model row's per-photo scores, which the others are paired with
    baseline = None  # the gray baseline's scores, from the first pass
    for w in weights or [None]:
        model = load_model(w, device="cpu")
        render = render_size or model.render_size
        for flip in (False, True) if tta else (False,):
            t0 = time.perf_counter()
            m, g, items = evaluate(truth, model.predictor, ColorSettings(render_size=render, upsample=upsample, tta=flip), render, baseline)
            seconds = time.perf_counter() - t0
            if baseline is None:
                baseline = [i.baseline for i in items]
                rows.append(("gray baseline", g, None))
                if sheet:
                    contact_sheet(items, sheet)
            name = model.info.name + (" +tta" if flip else "")
            rows.append((name, m, seconds))
            results.append({"model": name, "sha256": model.info.sha256, "render_size": render, "tta": flip,
                            "seconds": round(seconds, 2), "metrics": m})
            scores = [i.model for i in items]
            if first is None:
                first = (name, scores)
                continue
            try:
                paired = {k: paired_difference([getattr(s, k) for s in first[1]], [getattr(s, k) for s in scores]) for k in ("psnr", "ciede2000")}
            except ValueError as e:  # e.g. a photo reproduced exactly: infinite PSNR has no difference
                lines.append(f"{name} against {first[0]}: not paired ({e})")
                continue
            results[-1]["against"] = {"model": first[0], **{k: asdict(v) for k, v in paired.items()}}
            p, e = paired["psnr"], paired["ciede2000"]
            lines.append(f"{name} against {first[0]}, photo by photo: PSNR {p.mean:+.3f} dB (95 % interval {p.low:+.3f} to {p.high:+.3f}), "
                         f"higher on {p.higher:.0%}; CIEDE2000 {e.mean:+.3f} ({e.low:+.3f} to {e.high:+.3f})")
    if json_out:
        typer.echo(json.dumps({"photos": len(truth), "gray": rows[0][1], "models": results,
                               **({"sheet": str(sheet)} if sheet else {})}, indent=1))
        return
    table = Table(title=f"{len(truth)} photos ({photos}), gray baseline and models in one run")
    for col in ("", "MSE (0-255)", "PSNR dB", "SSIM", "CIEDE2000", "colourfulness", "ratio to truth", "seconds"):
        table.add_column(col, justify="right", no_wrap=not col)
    for name, r, seconds in rows:
        table.add_row(name, f"{r['mse']:.1f}", f"{r['psnr']:.3f}", f"{r['ssim']:.4f}", f"{r['ciede2000']:.3f}",
                      f"{r['colourfulness_pred']:.1f}", f"{r['colourfulness_ratio']:.3f}", "" if seconds is None else f"{seconds:.1f}")
    Console(width=max(110, Console().width)).print(table)
    for line in lines:
        typer.echo(line)


def _held_out_photos(command: str, photos: Path, min_colourfulness: float, limit: int = 0) -> list:
    """(path, truth) of the photos a folder or list names (the first `limit`), those at least
    `min_colourfulness` colourful; a usage error (exit 2) when that leaves none."""
    from colorize_cli.training.evaluate import colourful_only, load_truth, photos_in  # noqa: PLC0415

    chosen = colourful_only(load_truth(photos_in(photos)[: limit or None]), min_colourfulness)
    if not chosen:
        typer.echo(f"colorize {command}: no photo in {photos} has colourfulness {min_colourfulness} or more", err=True)
        raise typer.Exit(2)
    return chosen


@app.command("compare")
def compare_cmd(
    photos: Path = typer.Argument(..., help="Folder of black-and-white photos (no ground truth needed)."),
    weights: list[Path] = typer.Option(..., help="Weights files to compare; repeat (e.g. v1, then v2)."),
    out: Path = typer.Option(Path("compare-sheet.png"), "--out", help="The PNG sheet to write."),
    limit: int = typer.Option(24, help="How many photos (the first N by name)."),
) -> None:
    """A sheet of old photographs: input beside each model's result, to judge by eye."""
    import numpy as np  # noqa: PLC0415

    from colorize_cli.api import load_model  # noqa: PLC0415
    from colorize_cli.io.scanfile import read_scan, to_8bit  # noqa: PLC0415
    from colorize_cli.inference.predict import colorize_gray  # noqa: PLC0415
    from colorize_cli.settings import ColorSettings  # noqa: PLC0415
    from colorize_cli.training.evaluate import compare_sheet, photos_in  # noqa: PLC0415

    grays = [(p, read_scan(p).gray) for p in sorted(photos_in(photos))[:limit]]
    grays = [(p, g if g.dtype == np.uint8 else to_8bit(g)) for p, g in grays]
    columns = []
    for w in weights:
        model = load_model(w, device="cpu")
        columns.append((model.info.name, [colorize_gray(g, model.predictor, ColorSettings(), model.render_size) for _, g in grays]))
    typer.echo(str(compare_sheet(grays, columns, out)))


@app.command()
def calibrate(
    weights: Path = typer.Argument(..., help="A trained ChromaNet weights file."),
    photos: Path = typer.Argument(..., help="Held-out photos: a folder or a list file (e.g. the run's holdout.txt)."),
    out: Path = typer.Option(..., "--out", help="Where to write the calibrated weights."),
    render_size: int = typer.Option(0, help="Long side the network sees (0: the model's default)."),
    min_ratio: float = typer.Option(0.75, help="Least colourfulness, as a fraction of the truth's (0: the best PSNR, whatever the colour)."),
    min_colourfulness: float = typer.Option(0.0, help="Only photos at least this colourful (Hasler-Suesstrunk M; 0: all)."),
    min_vivid_ratio: float = typer.Option(0.0, help="Least colourfulness ratio on the colourful photos alone (truth M >= 30; 0: no such floor)."),
    tta: bool = typer.Option(False, "--tta", help="Score the decodings with flip averaging, as colorize-dir --tta colours."),
) -> None:
    """Choose ChromaNet's decoding (mix of regression and bins, temperature, chroma gain) on held-out photos."""
    import json  # noqa: PLC0415

    from colorize_cli.training.calibrate import calibrate_weights  # noqa: PLC0415

    chosen = _held_out_photos("calibrate", photos, min_colourfulness)
    source = f"{photos}" + (f" (colourfulness >= {min_colourfulness:g}: {len(chosen)} photos)" if min_colourfulness else "")
    try:
        done = calibrate_weights(weights, chosen, out, render_size, min_ratio, source=source, tta=tta, min_vivid_ratio=min_vivid_ratio)
    except ValueError as e:
        typer.echo(f"colorize calibrate: {e}", err=True)
        raise typer.Exit(2) from None
    for c in done.table:
        typer.echo(f"mix {c.mix:.2f}  T {c.temperature:.2f}  gain {c.gain:.2f}  PSNR {c.psnr:.3f}  dE00 {c.ciede2000:.3f}  "
                   f"ratio {c.colourfulness_ratio:.3f}  colourful {c.vivid_ratio:.3f}")
    typer.echo(json.dumps({"chosen": done.meta["calibration"], "weights": str(out), "sha256": done.sha256}, indent=1))


manifest_app = typer.Typer(help="Work with run manifests.", no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")


@manifest_app.command("merge")
def manifest_merge(
    shards: list[Path] = typer.Argument(..., help="Shard manifests (manifest.K-of-N.jsonl)."),
    out: Path = typer.Option(..., "--out", "-o", help="Merged manifest, e.g. <out>/manifest.jsonl."),
) -> None:
    """Combine shard manifests into one, so an unsharded rerun or `colorize report` sees every shard's work."""
    from colorize_cli.cli.terminal import merge_command  # noqa: PLC0415

    raise typer.Exit(merge_command(shards, out))


@app.command()
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
    _quiet_openmp()
    from colorize_cli.bench import bench_main  # noqa: PLC0415

    raise typer.Exit(bench_main(scans=scans, count=count, megapixels=megapixels, seed=seed, weights=weights, device=device,
                                render_size=render_size, upsample=upsample, tta=tta, fmt=fmt, quality=quality, batch_size=batch_size,
                                repeats=repeats, stages=stages, json_out=json_out, max_ratio=max_ratio,
                                lengths=[int(n) for n in lengths.split(",") if n.strip()]))


@app.command()
def report(
    out: Path = typer.Argument(..., help="Output folder of a finished run."),
    manifest: Optional[Path] = typer.Option(None, help="Manifest (default: <out>/manifest.jsonl)."),
    input_root: Optional[Path] = typer.Option(None, "--input", help="Folder of the originals, for the full-size view (default: as the run recorded it)."),
) -> None:
    """Write <out>/report.html, a review sheet, from a run's manifest and thumbnails."""
    from colorize_cli.report.sheet import write_report  # noqa: PLC0415

    path = write_report(out, manifest or out / "manifest.jsonl", input_root=input_root)
    typer.echo(str(path))


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
    weights: Optional[Path] = typer.Option(None, help="Weights file (default: the shipped model).", rich_help_panel=_COLOUR),
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
    shard: Optional[str] = typer.Option(None, help="K/N: process only shard K of N (stable hash of the path).", rich_help_panel=_RUNS),
    max_pixels: int = typer.Option(250_000_000, help="Refuse images with more pixels than this.", rich_help_panel=_READ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be done and why; load no model.", rich_help_panel=_RUNS),
    report: bool = typer.Option(False, "--report", help="Also write <out>/report.html, a review sheet.", rich_help_panel=_WRITE),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output.", rich_help_panel=_RUNS),
    json_out: bool = typer.Option(False, "--json", help="Print a machine-readable summary on stdout.", rich_help_panel=_RUNS),
    version: bool = _VERSION,
    engine: str = typer.Option("local", help="local (this machine) | ray (a Ray cluster; pip install \"colorize-cli[ray]\").", rich_help_panel=_SPEED),
    ray_address: Optional[str] = typer.Option(None, help="--engine ray: 'auto' or host:port joins a running cluster (default: start a local one).", rich_help_panel=_SPEED),
    workers: Optional[str] = typer.Option(None, help="--engine ray: N workers, or N-M to grow with an autoscaling cluster (default: as many as fit).", rich_help_panel=_SPEED),
    cpus_per_worker: float = typer.Option(1.0, help="--engine ray: CPUs each worker reserves (also its torch threads).", rich_help_panel=_SPEED),
    gpus_per_worker: float = typer.Option(0.0, help="--engine ray: GPUs each worker reserves; fractions share a GPU (0.25: four per GPU).", rich_help_panel=_SPEED),
    max_retries: int = typer.Option(2, help="--engine ray: retries of a file whose worker died while processing it.", rich_help_panel=_SPEED),
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

    if upsample not in ("guided", "bilinear"):
        usage(f"--upsample must be guided or bilinear, not {upsample!r}")
    if bit_depth not in ("8", "16", "same"):
        usage(f"--bit-depth must be 8, 16 or same, not {bit_depth!r}")
    if tiff_compression not in ("lzw", "deflate", "none"):
        usage(f"--tiff-compression must be lzw, deflate or none, not {tiff_compression!r}")
    from colorize_cli.discover.formats import OUT_FORMATS, SIXTEEN_BIT  # noqa: PLC0415

    if bit_depth == "16" and fmt and OUT_FORMATS.get(fmt.lower(), "PNG") not in SIXTEEN_BIT:
        usage(f"--bit-depth 16 needs PNG, TIFF or JPEG 2000 output: {fmt} holds 8 bits a channel")
    if tile_overlap * 2 >= tile_size:
        usage(f"--tile-overlap {tile_overlap} must be less than half of --tile-size {tile_size}")
    ray_settings = _ray_settings(engine, ray_address, workers, cpus_per_worker, gpus_per_worker, max_retries, usage)
    try:
        settings = RunSettings(
            input_root=input_root, out_root=out, weights=weights, include=tuple(include), exclude=tuple(exclude),
            follow_symlinks=follow_symlinks, allow_outside_root=allow_outside_root,
            color=ColorSettings(render_size=render_size, tile_size=tile_size, tile_overlap=tile_overlap, saturation=saturation, upsample=upsample,
                                tta=tta),
            output=OutputSettings(format=fmt.lower() if fmt else None, quality=quality, suffix=suffix, bit_depth=bit_depth, keep_times=keep_times,
                                  tiff_compression=tiff_compression),
            runtime=RuntimeSettings(device=device, batch_size=batch_size, fp32=fp32, max_pixels=max_pixels),
            manifest=manifest, overwrite=overwrite, retry_failed=retry_failed,
            shard=parse_shard(shard) if shard else None, dry_run=dry_run, report=report, quiet=quiet,
            engine=engine, ray=ray_settings,
        )
        if dry_run:
            _dry_run(settings, json_out)
            return
        _quiet_openmp()
        from colorize_cli.run.interrupts import StopFlag, handle_signals  # noqa: PLC0415

        with handle_signals(StopFlag()) as stop:  # SIGTERM too, from here on, while torch loads
            from colorize_cli.cli.terminal import run_dir  # noqa: PLC0415

            code = run_dir(settings, json_out=json_out, argv=sys.argv, stop=stop)
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


def _ray_settings(engine: str, address: Optional[str], workers: Optional[str], cpus: float, gpus: float, retries: int, usage) -> object:
    """The --engine ray options, checked; each is refused with the local engine, where it would do nothing."""
    from colorize_cli.run.executors.ray import parse_workers  # noqa: PLC0415
    from colorize_cli.settings import RaySettings  # noqa: PLC0415

    if engine not in ("local", "ray"):
        usage(f"--engine must be local or ray, not {engine!r}")
    given = [name for name, value, default in (("--ray-address", address, None), ("--workers", workers, None),
                                                ("--cpus-per-worker", cpus, 1.0), ("--gpus-per-worker", gpus, 0.0),
                                                ("--max-retries", retries, 2)) if value != default]
    if engine == "local" and given:
        usage(f"{', '.join(given)} only apply with --engine ray")
    if cpus <= 0 or gpus < 0 or retries < 0:
        usage("--cpus-per-worker must be above 0, --gpus-per-worker and --max-retries 0 or more")
    try:
        span = parse_workers(workers) if workers else None
    except ValueError as e:
        usage(str(e))
    return RaySettings(address=address, workers=span, cpus_per_worker=cpus, gpus_per_worker=gpus, max_retries=retries)


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


app.command("dir")(colorize_dir)


def _exit_130_on_signals() -> None:
    """From the first moment of the process: SIGINT or SIGTERM exit 130 with a message (click
    would turn SIGINT into "Aborted!", exit 1; SIGTERM would kill silently, 143). A run replaces
    this with its own phase-aware handler (interrupts.py) as soon as its options are parsed."""
    import signal  # noqa: PLC0415

    def stop(signum: int, _frame: object) -> None:
        typer.echo(f"colorize-dir: interrupted ({signal.Signals(signum).name}) before any file was started", err=True)
        raise SystemExit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def main() -> None:
    import sys  # noqa: PLC0415

    if sys.argv[1:2] == ["dir"]:  # other commands (train) keep Python's own Ctrl-C behaviour
        _exit_130_on_signals()
    app()


def dir_main() -> None:
    _exit_130_on_signals()
    typer.run(colorize_dir)
