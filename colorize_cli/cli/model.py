"""Model commands: train, eval, compare, calibrate."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from colorize_cli.settings import resolve_render_size
from colorize_cli.cli.common import quiet_openmp
from colorize_cli.models import ARCHS


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
    quiet_openmp()
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
        render = resolve_render_size(render_size, model.render_size)
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
