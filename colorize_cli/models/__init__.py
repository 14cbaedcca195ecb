"""Colorization networks behind one small interface, and their registry.

Every model is a plain `nn.Module` with:
    stride: int               inputs are padded to a multiple of this
    output_scale: int         its a*b* come out at 1/output_scale of the input size
    default_render_size: int  long side (px) it works best at
    predict_ab(l) -> ab       (N,1,H,W) L* in [0,100] -> (N,2,H/s,W/s) a*b* in Lab units
so the engine never needs to know which one it runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

# name -> (module, class); imported on first use so that torch-free code can import this package.
ARCHS: dict[str, tuple[str, str]] = {
    "chromanet": ("chromanet", "ChromaNet"),
    "seed-unet": ("seeds", "SeedUNet"),
    "seed-bn-unet": ("seeds", "SeedBNUNet"),
    "koala": ("seeds", "Koala"),
}


def build(arch: str) -> nn.Module:
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    module, cls = ARCHS[arch]
    return getattr(importlib.import_module(f".{module}", __name__), cls)()
