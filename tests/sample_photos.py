"""Small colour photos for training tests: smooth random colour fields, written as PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def colour_photos(folder: Path, n: int = 10) -> Path:
    """``n`` 96x80 photos in a new ``folder``, each a bicubic blow-up of a 4x4 colour field."""
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(n):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((96, 80), Image.BICUBIC).save(folder / f"p{i}.png")
    return folder
