"""The one place the engine is chosen, and a folder run over it. Only the local executor imports
torch: a Ray driver hands files to workers that load the model themselves, so it starts without
torch's seconds of import (tests/test_ray_engine.py holds it to that)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from colorize_cli.manifest import FileRecord
from colorize_cli.run.interrupts import StopFlag
from colorize_cli.run.plan import Plan
from colorize_cli.run.session import Executor, RunResult, RunSession
from colorize_cli.settings import RunSettings

if TYPE_CHECKING:
    from colorize_cli.inference.colorizer import Colorizer


def executor_for(settings: RunSettings, model: Colorizer | None = None) -> Executor:
    """Ray's workers load the model themselves; the local executor uses `model`, or loads the
    one the settings name."""
    if settings.engine == "ray":
        from colorize_cli.run.executors.ray import RayExecutor  # noqa: PLC0415

        return RayExecutor()
    from colorize_cli.inference.colorizer import load_model  # noqa: PLC0415
    from colorize_cli.run.executors.local import LocalExecutor, default_engine_settings  # noqa: PLC0415

    model = model or load_model(settings.weights, settings.runtime.device, settings.runtime.fp32, settings.model_family)
    return LocalExecutor(model, default_engine_settings(settings.runtime.batch_size, model.device))


def run(
    settings: RunSettings,
    model: Colorizer | None = None,
    on_file: Callable[[FileRecord], None] = lambda rec: None,
    argv: Sequence[str] = (),
    stop: StopFlag | None = None,
    on_plan: Callable[[Plan], None] = lambda plan: None,
) -> RunResult:
    """Colorize a folder tree as planned; resumes from the manifest by default. Holds the output
    folder's lock for the whole run, so a second run on the same folder is refused (shards K/N of
    one N may share it). ``stop`` carries the caller's signal policy (interrupts.StopFlag). With
    settings.engine "ray" the files go to a Ray cluster's workers (`model` is not used)."""
    return RunSession(settings, executor_for(settings, model), on_file, on_plan, argv, stop).run()
