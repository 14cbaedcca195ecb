"""The scans a benchmark runs on: generated ones that compress like photographs, a user's own, and
the folder each measurement reads them from."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from colorize_cli.bench.spec import BenchError

_SCAN_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")


def _field(rng: np.random.Generator, h: int, w: int, gh: int, gw: int) -> np.ndarray:
    """Smooth random structure: a small uniform field upsampled bicubically to (h, w)."""
    small = rng.random((max(2, gh), max(2, gw)), dtype=np.float32)
    return np.asarray(Image.fromarray(small, "F").resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)


def synthetic_scan(h: int, w: int, seed: int) -> np.ndarray:
    """A gray (h, w) uint8 picture that compresses like a photograph: broad shading, mid-scale
    structure, hard edges and film grain. A flat or purely smooth image would make JPEG decoding
    and encoding unrealistically cheap and flatter the I/O floor; at quality 90 this gives about
    2 bits per pixel, as 6-megapixel scans of prints do."""
    rng = np.random.default_rng(seed)
    img = 0.55 * _field(rng, h, w, 6, 9)
    img += 0.25 * _field(rng, h, w, 40, 60)
    img += 0.12 * _field(rng, h, w, h // 24, w // 24)
    img += 0.15 * (_field(rng, h, w, 24, 36) > 0.6)
    img *= 200.0
    img += 10.0
    img += rng.normal(0.0, 5.0, size=(h, w)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_scans(folder: Path, n: int, megapixels: float = 6.0, seed: int = 0, quality: int = 90) -> list[Path]:
    """Write n synthetic gray JPEG scans of about `megapixels` each (3:2 landscape) into folder."""
    if n < 1 or megapixels <= 0:
        raise BenchError(f"need at least one scan of positive size, got n={n}, megapixels={megapixels}")
    folder.mkdir(parents=True, exist_ok=True)
    w = max(8, round((megapixels * 1e6 * 1.5) ** 0.5))
    h = max(8, round(w / 1.5))
    paths = []
    for i in range(n):
        path = folder / f"scan-{i:04d}.jpg"
        Image.fromarray(synthetic_scan(h, w, seed * 100_003 + i), "L").save(path, "JPEG", quality=quality)
        paths.append(path)
    return paths


def scans_in(folder: Path) -> list[Path]:
    """The image files under a folder (by extension), sorted, for benchmarking a user's own scans."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in _SCAN_SUFFIXES and not p.name.startswith("."))


def stage_inputs(scans: Sequence[Path], folder: Path) -> list[Path]:
    """Give the scans a folder of their own (symbolic links, else copies), so the run and the floor
    see exactly these files, and read each once so both start from a warm page cache. Links leave
    the originals untouched (a hard link would change their ctime)."""
    folder.mkdir(parents=True)
    staged = []
    for i, src in enumerate(scans):
        dst = folder / f"{i:05d}-{src.name}"
        try:
            dst.symlink_to(src.resolve())
        except OSError:
            shutil.copyfile(src, dst)
        with open(dst, "rb") as f:
            while f.read(1 << 20):
                pass
        staged.append(dst)
    return staged
