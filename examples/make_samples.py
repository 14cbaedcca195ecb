"""Regenerate the bundled sample scans (synthetic, project-owned, so they can ship with the code).

    python examples/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).parent / "scans"


def landscape(w: int, h: int, seed: int) -> Image.Image:
    """Sky gradient, sun, rolling hills, a lake, film grain: a plausible old outdoor print."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None]
    sky = 200 - 60 * y + np.zeros((h, w))
    img = Image.fromarray(sky.astype(np.uint8), "L")
    d = ImageDraw.Draw(img)
    d.ellipse((w * 0.7, h * 0.1, w * 0.8, h * 0.1 + w * 0.1), fill=240)
    for k, tone in enumerate((120, 95, 70)):
        xs = np.linspace(0, w, 40)
        ys = h * (0.45 + 0.12 * k) + h * 0.05 * np.sin(xs / w * 6 + seed + k)
        d.polygon([(0, h)] + list(zip(xs, ys)) + [(w, h)], fill=tone)
    d.rectangle((0, h * 0.82, w, h), fill=150)
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float32)
    arr += rng.normal(0, 5, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")


def main() -> None:
    (OUT / "1912" / "coast").mkdir(parents=True, exist_ok=True)
    landscape(640, 427, 1).save(OUT / "1912" / "coast" / "harbour.jpg", quality=88)
    landscape(480, 640, 2).save(OUT / "1912" / "village.png")
    sepia = landscape(600, 400, 3).convert("RGB")
    r, g, b = (np.asarray(sepia, dtype=np.float32)[..., i] for i in range(3))
    toned = np.dstack([r * 1.0, g * 0.85, b * 0.65]).clip(0, 255).astype(np.uint8)
    Image.fromarray(toned, "RGB").save(OUT / "family-sepia.jpg", quality=90)
    wide = np.asarray(landscape(1600, 300, 4), dtype=np.uint16) * 257  # a 16-bit panorama
    Image.fromarray(wide).save(OUT / "panorama-16bit.png")


if __name__ == "__main__":
    main()
