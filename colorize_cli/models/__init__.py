"""Colorization networks behind one interface (:class:`ColorModel`), and the one registry of
architectures (:data:`ARCHS`) that training, evaluation, calibration and loading all read.

Torch-free at import: the classes are imported on first use, so planning, ``--help`` and
``--dry-run`` never load torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn


@runtime_checkable
class ColorModel(Protocol):
    """What the engine needs of a model, so it never needs to know which one it runs."""

    stride: int  # inputs are padded to a multiple of this
    output_scale: int  # its a*b* come out at 1/output_scale of the input size
    default_render_size: int  # long side (px) it works best at

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        """(N,1,H,W) L* in [0,100] -> (N,2,H/s,W/s) a*b* in Lab units."""
        ...


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: how to build it, how to train it, which pretrained weights it starts from."""

    module: str  # colorize_cli.models.<module>
    cls: str
    loss: str  # an objective of training.objectives.OBJECTIVES
    loss_args: tuple[tuple[str, Any], ...] = ()  # keyword arguments of that objective
    pretrained: str | None = None  # submodule that takes ImageNet weights (MobileNetV2's or EfficientNet-Lite2's)
    # "finetune": frozen for the first part of the budget, then trained at the encoder's rate
    # (frozen for all of it, it takes no gradient at all, like "frozen");
    # "frozen": a fixed feature extractor for the whole run (as in the Koalarization paper)
    pretrained_training: Literal["finetune", "frozen"] | None = None
    calibrated_decoding: bool = False  # has mix/temperature buffers that `colorize calibrate` sets
    trainable: bool = True  # False: assembled from trained networks (tools/pair_weights.py), not trained as one


ARCHS: dict[str, ArchSpec] = {
    "chromanet": ArchSpec("chromanet", "ChromaNet", loss="chromanet", pretrained="encoder",
                          pretrained_training="finetune", calibrated_decoding=True),
    "chromanet-lite2": ArchSpec("chromanet", "ChromaNetLite2", loss="chromanet", pretrained="encoder",
                                pretrained_training="finetune", calibrated_decoding=True),
    "seed-unet": ArchSpec("seeds", "SeedUNet", loss="seed-rgb", loss_args=(("peak", 255.0),)),
    "seed-bn-unet": ArchSpec("seeds", "SeedBNUNet", loss="seed-rgb", loss_args=(("peak", 1.0),)),
    "koala": ArchSpec("seeds", "Koala", loss="koala", pretrained="classifier", pretrained_training="frozen"),
    "chromanet-pair": ArchSpec("chromanet", "ChromaNetPair", loss="chromanet", calibrated_decoding=True, trainable=False),
}  # fmt: skip


def arch_spec(arch: str) -> ArchSpec:
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[arch]


def check_model(model: object) -> ColorModel:
    """The model itself if it has the interface, else a TypeError naming what is missing or wrong."""
    problems = [name for name in ("stride", "output_scale", "default_render_size")
                if not isinstance(getattr(model, name, None), int) or getattr(model, name) < 1]  # fmt: skip
    if not callable(getattr(model, "predict_ab", None)):
        problems.append("predict_ab")
    if problems or not isinstance(model, ColorModel):
        raise TypeError(
            f"{type(model).__name__} is not a colorization model: {', '.join(problems)} missing or invalid "
            "(needs int stride, output_scale, default_render_size >= 1 and predict_ab(lightness))"
        )
    return model


def build(arch: str) -> nn.Module:
    """A fresh, randomly initialised model of a registered architecture, checked against ColorModel."""
    spec = arch_spec(arch)
    model = getattr(importlib.import_module(f".{spec.module}", __name__), spec.cls)()
    check_model(model)
    return model
