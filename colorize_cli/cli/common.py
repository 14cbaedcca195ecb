"""What every command shares: quiet OpenMP before torch loads, and --version (torch-free)."""

from __future__ import annotations

import typer


def quiet_openmp() -> None:
    """Idle OpenMP threads sleep instead of spinning. Torch's threads share the cores with our
    decode/encode threads (and, on a shared machine, with others): spinning burned 2-3x the CPU
    time for the same work in our measurements. Must run before torch is imported."""
    import os  # noqa: PLC0415

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def print_version(value: bool) -> None:
    """--version: the package version and the shipped model, without importing torch."""
    if not value:
        return
    from colorize_cli import __version__  # noqa: PLC0415
    from colorize_cli.models.paths import DEFAULT_WEIGHTS, SHIPPED_WEIGHTS_LICENCE  # noqa: PLC0415
    from colorize_cli.run.plan import model_ref  # noqa: PLC0415

    ref = model_ref(DEFAULT_WEIGHTS)
    typer.echo(f"colorize-cli {__version__} (code: Apache-2.0), model {ref.name} (sha256 {ref.sha256[:12]}; weights: {SHIPPED_WEIGHTS_LICENCE})")
    raise typer.Exit()


VERSION = typer.Option(False, "--version", callback=print_version, is_eager=True, help="Print the version and the model, then exit.")
