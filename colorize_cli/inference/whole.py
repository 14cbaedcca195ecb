"""Models that see the whole picture at one fixed square size (DDColor: 512 x 512, upstream's
pipeline): the working L* is squashed to the square, never tiled, and the a*b* stretched back.

Global by design, so one scan gets one colour story whatever its width; the full-resolution
merge then puts the chroma under the original L*, guided by its edges."""

from __future__ import annotations

import numpy as np

from colorize_cli.inference.coherence import resize


def predict_whole(predictor, lightness: np.ndarray, size: int, flip: bool = False) -> np.ndarray:
    """a*b* (h, w, 2) at the working L*'s size, from one network call on the size x size square."""
    square = resize(lightness, (size, size))
    ab = predictor.predict([square], flip)[0]
    return resize(ab, lightness.shape)
