"""Small test images built in the test session: colour photos for training tests (smooth random
colour fields, written as PNGs), and photo-like gray scans (smooth light, hard edges, fine texture)."""

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


def photo_like_gray(width: int, height: int, seed: int) -> np.ndarray:
    """A gray uint8 image with what a photograph has and a merge must keep: smooth shading (a sky
    gradient and soft blobs), hard edges (buildings), fine texture (grain), a full tonal range."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = 0.35 + 0.4 * (1 - y / height)  # a sky, brighter at the top
    for _ in range(4):  # soft light and shade
        cy, cx, r, s = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.1, 0.4) * width, rng.uniform(-0.3, 0.3)
        img += s * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
    for _ in range(5):  # hard-edged shapes, dark and light
        y0, x0 = int(rng.uniform(0.3, 0.9) * height), int(rng.uniform(0, 0.8) * width)
        img[y0:, x0 : x0 + int(rng.uniform(0.05, 0.2) * width)] = rng.uniform(0.02, 0.98)
    img += rng.normal(0, 0.03, img.shape)  # grain
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
