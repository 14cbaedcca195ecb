"""Colorization networks behind one small interface, and their registry.

Every model is a plain `nn.Module` with:
    stride: int               inputs are padded to a multiple of this
    output_scale: int         its a*b* come out at 1/output_scale of the input size
    default_render_size: int  long side (px) it works best at
    predict_ab(l) -> ab       (N,1,H,W) L* in [0,100] -> (N,2,H/s,W/s) a*b* in Lab units
so the engine never needs to know which one it runs.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from .chromanet import ChromaNet
from .seeds import Koala, SeedBNUNet, SeedUNet

ARCHS: dict[str, Callable[[], nn.Module]] = {
    "chromanet": ChromaNet,
    "seed-unet": SeedUNet,
    "seed-bn-unet": SeedBNUNet,
    "koala": Koala,
}


def build(arch: str) -> nn.Module:
    try:
        return ARCHS[arch]()
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}") from None
