"""A loaded, verified model on its device, ready to predict: what every engine and tool runs.

Its own module (below `api`, the library's face, and the engines) so that the local engine, the
Ray workers, `doctor` and `eval` all load a model the same way without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from colorize_cli.inference.devices import autocast_dtype, resolve_device
from colorize_cli.inference.predict import Predictor
from colorize_cli.models import check_model
from colorize_cli.models.weights import DEFAULT_WEIGHTS, ModelInfo
from colorize_cli.models.weights import load_model as _load_weights


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


def from_module(model: nn.Module, info: ModelInfo, device: str = "auto", fp32: bool = False) -> Colorizer:
    """Wrap an in-memory model (e.g. one just trained, or a test's tiny network); it must have
    the ColorModel interface (models.check_model says what is missing)."""
    check_model(model)
    dev = resolve_device(device)
    model = model.eval().to(dev).to(memory_format=torch.channels_last)
    return Colorizer(model, info, dev, Predictor(model, dev, autocast_dtype(dev, fp32)))


def load_model(weights: Path | None = None, device: str = "auto", fp32: bool = False) -> Colorizer:
    """Load and verify a weights file (default: the shipped model) onto a device."""
    dev = resolve_device(device)
    model, info = _load_weights(weights or DEFAULT_WEIGHTS, dev)
    return from_module(model, info, str(dev), fp32)
