"""Command-line entry points. They parse options and call the library; nothing else lives here.

Heavy imports (torch, the engine) happen inside the commands, so `--help` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="colorize-cli: give colour to scanned black-and-white photographs.", no_args_is_help=True, add_completion=False)


@app.command()
def train(
    data: list[Path] = typer.Argument(..., help="Folders of colour photos (searched recursively)."),
    out: Path = typer.Option(Path("runs/chromanet"), "--out", help="Run folder: checkpoint, log, exported weights."),
    arch: str = typer.Option("chromanet", help="chromanet | seed-unet | seed-bn-unet | koala"),
    cpu_minutes: float = typer.Option(60.0, help="Budget of process CPU time, minutes (all threads)."),
    batch: int = typer.Option(24, help="Crops per step."),
    crop: int = typer.Option(128, help="Training crop side, px."),
    lr: float = typer.Option(1e-3, help="Learning rate of the new layers."),
    holdout: int = typer.Option(300, help="Photos held out for validation."),
    seed: int = typer.Option(0),
    threads: int = typer.Option(0, help="Torch threads (0: all cores)."),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    pretrained: bool = typer.Option(True, help="Start the encoder from ImageNet weights."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's checkpoint."),
) -> None:
    """Train a colorization model on folders of colour photos."""
    from .training.data import CropSettings  # noqa: PLC0415
    from .training.loop import TrainConfig, train as run_training  # noqa: PLC0415

    cfg = TrainConfig(
        data=tuple(str(d) for d in data), out=str(out), arch=arch, cpu_minutes=cpu_minutes, batch=batch,
        lr=lr, crop=CropSettings(size=crop), holdout=holdout, seed=seed, threads=threads, device=device,
        pretrained=pretrained,
    )
    run_training(cfg, resume=resume, log=typer.echo)


def main() -> None:
    app()


def dir_main() -> None:
    typer.run(lambda: typer.echo("colorize-dir: not yet wired"))
