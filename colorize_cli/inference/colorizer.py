"""A loaded, verified model on its device, ready to predict: what every engine and tool runs.

Its own module (below `api`, the library's face, and the engines) so that the local engine, the
Ray workers, `doctor` and `eval` all load a model the same way without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from colorize_cli.inference.devices import autocast_dtype, resolve_device
from colorize_cli.inference.fold import fold_batch_norms
from colorize_cli.inference.predict import Predictor
from colorize_cli.models import check_model
from colorize_cli.models.checkpoints import load_checkpoint
from colorize_cli.models.spec import ModelSpec, model_spec
from colorize_cli.models.weights import DEFAULT_WEIGHTS, ModelInfo


@dataclass
class Colorizer:
    """A loaded, verified model on its device, ready to predict."""

    model: nn.Module
    info: ModelInfo
    device: torch.device
    predictor: Predictor

    @property
    def render_size(self) -> int:
        return int(self.model.default_render_size)

    @property
    def spec(self) -> ModelSpec:
        """What the pipeline must know to feed this model (input, size, tiling, dtypes)."""
        return model_spec(self.model)

    @property
    def family(self) -> str:
        return self.spec.family


def from_module(model: nn.Module, info: ModelInfo, device: str = "auto", fp32: bool = False) -> Colorizer:
    """Wrap an in-memory model (e.g. one just trained, or a test's tiny network); it must have
    the ColorModel interface (models.check_model says what is missing)."""
    check_model(model)
    dev = resolve_device(device)
    model = model.eval().to(dev).to(memory_format=torch.channels_last)
    return Colorizer(model, info, dev, Predictor(model, dev, autocast_dtype(dev, fp32, model_spec(model).dtypes_for(dev.type))))


def load_model(weights: Path | None = None, device: str = "auto", fp32: bool = False, family: str | None = None) -> Colorizer:
    """Load a weights file onto a device: the shipped model by default (its sha256 verified), or a
    user's checkpoint of any registered family (detected from its keys, or forced by ``family``),
    loaded safely (no pickle runs code) and hashed."""
    dev = resolve_device(device)
    model, info = load_checkpoint(weights or DEFAULT_WEIGHTS, family=family, device=dev)
    fold_batch_norms(model.eval())  # this model is only run: nothing trains or saves it again
    return from_module(model, info, str(dev), fp32)
