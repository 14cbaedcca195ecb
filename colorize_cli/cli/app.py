"""The `colorize` command: one typer app, each command group in its own module of this folder."""

from __future__ import annotations

import typer

from colorize_cli.cli import doctor as doctor_cmds, model, review
from colorize_cli.cli.common import VERSION
from colorize_cli.cli.dir import colorize_dir, dir_main, exit_130_on_signals, ignore_signals_once_finished

app = typer.Typer(help="colorize-cli: give colour to scanned black-and-white photographs.", no_args_is_help=True, add_completion=False)


@app.callback()
def _main(version: bool = VERSION) -> None:
    """colorize-cli: give colour to scanned black-and-white photographs."""


app.command()(doctor_cmds.doctor)
app.command()(model.train)
app.command("eval")(model.eval_cmd)
app.command("compare")(model.compare_cmd)
app.command()(model.calibrate)
manifest_app = typer.Typer(help="Work with run manifests.", no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")
manifest_app.command("merge")(review.manifest_merge)
app.command()(doctor_cmds.bench)
app.command()(review.report)
app.command("dir")(colorize_dir)

__all__ = ["app", "main", "dir_main"]


def main() -> None:
    import sys  # noqa: PLC0415

    if sys.argv[1:2] != ["dir"]:  # other commands (train) keep Python's own Ctrl-C behaviour
        app()
        return
    exit_130_on_signals()
    try:
        app()
    finally:
        ignore_signals_once_finished()  # the interpreter's shutdown has no Python handler left
