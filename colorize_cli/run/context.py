"""The settings of one run, resolved once: every stage and every executor reads them from here.

A RunContext is small and picklable, so the Ray driver sends the very object the local engine
uses; nobody works out the render size, the settings key or the model's identity again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from colorize_cli.run.plan import ModelRef, Plan
from colorize_cli.settings import RunSettings, resolve_render_size


@dataclass(frozen=True)
class ModelInfo:
    """What an executor reports of the model it loaded: who it is and the size it works at."""

    ref: ModelRef
    render_size: int  # the model's own default long side, px


@dataclass(frozen=True)
class RunContext:
    settings: RunSettings
    model: ModelRef
    render_size: int  # long side the network sees, px: --render-size, else the model's default
    settings_key: str  # what a resume decision compares (output-affecting settings + model digest)
    run_id: str

    @property
    def out_root(self) -> Path:
        return self.settings.out_root


def resolve_context(plan: Plan, model: ModelInfo, run_id: str) -> RunContext:
    """The one place a run's render size is decided; the settings key is the plan's."""
    s = plan.settings
    return RunContext(settings=s, model=model.ref, render_size=resolve_render_size(s.color.render_size, model.render_size),
                      settings_key=plan.settings_key, run_id=run_id)

