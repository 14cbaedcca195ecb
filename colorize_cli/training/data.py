"""Training photos: loading, the colourless filter, and augmented luminance/chroma crops.

Photos are decoded once into memory (the training set is ~20,000 small JPEGs, ~3 GB as
uint8), then worker processes cut random crops so the network never waits on Pillow.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from colorize_cli.color import gray_to_lightness, lightness_to_gray, rgb_to_lab

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class CropSettings:
    size: int = 128  # side of the square training crop, px
    min_scale: float = 0.6  # smallest crop side, as a fraction of the photo's short side
    damage: float = 0.3  # probability of each simulated old-photo defect
    marks: float = 0.0  # probability of each kind of physical damage (scratches, cracks, dust, folds, stains)


def list_photos(folders: list[Path]) -> list[Path]:
    files = [p for d in folders for p in Path(d).rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES]
    return sorted(files)


def write_photo_list(dest: Path, photos: list) -> None:
    """One photo path per line: the list file `colorize eval` and `calibrate` read in place of a folder."""
    dest.write_text("".join(f"{p}\n" for p in photos))


def mean_chroma(rgb: np.ndarray) -> float:
    """Mean a*b* magnitude of a photo, on a small copy; gray and sepia photos score low."""
    small = rgb[::4, ::4].astype(np.float32) / 255.0
    lab = rgb_to_lab(small)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def load_photos(paths: list[Path], min_chroma: float = 6.0, min_side: int = 64) -> tuple[list[np.ndarray], int]:
    """Decode photos to RGB uint8, dropping gray, nearly colourless and tiny ones.
    Returns the kept photos and how many were dropped."""
    kept, dropped = [], 0
    for p in paths:
        try:
            with Image.open(p) as im:
                rgb = np.asarray(im.convert("RGB"))
        except OSError:
            dropped += 1
            continue
        if min(rgb.shape[:2]) < min_side or mean_chroma(rgb) < min_chroma:
            dropped += 1
            continue
        kept.append(rgb)
    return kept, dropped


def damage(gray: Image.Image, rng: np.random.Generator, p: float) -> Image.Image:
    """Simulated old-photo defects on the network's input only: blur, JPEG artefacts, fading,
    grain. The target chroma stays clean, so the model learns to see through them."""
    if rng.random() < p:
        gray = gray.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
    if rng.random() < p:
        buf = io.BytesIO()
        gray.save(buf, "JPEG", quality=int(rng.integers(25, 85)))
        buf.seek(0)
        gray = Image.open(buf).convert("L")
    arr = np.asarray(gray, dtype=np.float32)
    if rng.random() < p:  # fading: lower contrast, lifted or darkened
        c = rng.uniform(0.6, 1.0)
        arr = arr * c + (1.0 - c) * rng.uniform(60, 200)
    if rng.random() < p:  # film grain
        arr = arr + rng.normal(0.0, rng.uniform(2.0, 8.0), arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))


def _line_mask(h: int, w: int, rng: np.random.Generator, n: int, wander: float) -> np.ndarray:
    """Thin random paths (a scratch is nearly straight, a crack wanders), as a 0/1 float mask."""
    mask = np.zeros((h, w), np.float32)
    for _ in range(n):
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        angle = rng.uniform(0, np.pi)
        for _ in range(int(rng.integers(h // 3, 2 * h))):
            angle += rng.normal(0.0, wander)
            y, x = y + np.sin(angle), x + np.cos(angle)
            if not (0 <= y < h and 0 <= x < w):
                break
            mask[int(y), int(x)] = 1.0
    return mask


def marks(lum: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """Physical damage of old prints on gray values (0-255): scratches and cracks (bright or
    dark thin lines), dust and specks, a fold line, stains and uneven fading. The training target
    keeps the undamaged photo's colour, so the model learns to leave damage uncoloured."""
    h, w = lum.shape
    out = lum.copy()
    if rng.random() < p:  # scratches: nearly straight, usually bright (emulsion scraped off)
        m = _line_mask(h, w, rng, int(rng.integers(1, 4)), 0.02)
        out = np.where(m > 0, rng.uniform(200, 255) if rng.random() < 0.7 else rng.uniform(0, 50), out)
    if rng.random() < p:  # cracks: wandering, dark or bright, sometimes branching
        m = _line_mask(h, w, rng, int(rng.integers(1, 6)), 0.35)
        if rng.random() < 0.5:
            m = np.maximum(m, np.roll(m, 1, axis=int(rng.integers(0, 2))))
        out = np.where(m > 0, rng.uniform(0, 60) if rng.random() < 0.5 else rng.uniform(190, 255), out)
    if rng.random() < p:  # dust and specks
        n = int(rng.integers(5, 60))
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        out[ys, xs] = np.where(rng.random(n) < 0.5, rng.uniform(0, 40, n), rng.uniform(215, 255, n))
    if rng.random() < p:  # a fold line: a bright band with a darker edge
        if rng.random() < 0.5:
            c = int(rng.integers(2, w - 2))
            out[:, c - 1 : c + 1] = np.clip(out[:, c - 1 : c + 1] + rng.uniform(40, 110), 0, 255)
            out[:, c + 1] *= 0.8
        else:
            c = int(rng.integers(2, h - 2))
            out[c - 1 : c + 1] = np.clip(out[c - 1 : c + 1] + rng.uniform(40, 110), 0, 255)
            out[c + 1] *= 0.8
    if rng.random() < p:  # stains and uneven fading: smooth blotches lighten or darken
        gh, gw = int(rng.integers(2, 5)), int(rng.integers(2, 5))
        field = np.asarray(Image.fromarray(rng.normal(0, 1, (gh, gw)).astype(np.float32)).resize((w, h), Image.BICUBIC))
        out = out * (1.0 + rng.uniform(0.1, 0.35) * field) + rng.uniform(-20, 20) * field
    return np.clip(out, 0, 255).astype(np.float32)


def random_crop(rgb: np.ndarray, rng: np.random.Generator, s: CropSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented sample: L* of the damaged gray (size, size); the clean crop's Lab and
    sRGB in [0, 1], each (size, size, 3)."""
    h, w = rgb.shape[:2]
    side = int(min(h, w) * rng.uniform(s.min_scale, 1.0))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(rgb[y : y + side, x : x + side]).resize((s.size, s.size), Image.BILINEAR)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    target = np.asarray(crop, dtype=np.float32) / 255.0
    lab = rgb_to_lab(target)
    gray8 = np.clip(lightness_to_gray(lab[..., 0]) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    gray = np.asarray(damage(Image.fromarray(gray8), rng, s.damage), dtype=np.float32)
    if s.marks:
        gray = np.rint(marks(gray, rng, s.marks))
    lightness = gray_to_lightness(gray / 255.0)
    return lightness, lab, target


def make_batch(photos: list[np.ndarray], rng: np.random.Generator, batch: int, s: CropSettings) -> tuple[np.ndarray, ...]:
    """(N,1,S,S) input L*, (N,3,S,S) target Lab, (N,3,S,S) target sRGB."""
    idx = rng.integers(0, len(photos), batch)
    samples = [random_crop(photos[i], rng, s) for i in idx]
    lightness = np.stack([t[0] for t in samples])[:, None]
    lab = np.stack([t[1] for t in samples]).transpose(0, 3, 1, 2)
    rgb = np.stack([t[2] for t in samples]).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(lightness), np.ascontiguousarray(lab), np.ascontiguousarray(rgb)


class _Crops(IterableDataset):
    """Endless batches from one seeded generator per worker process: worker 0 draws from
    ``seed`` itself, so a single worker cuts exactly the batches one generator would. Each batch
    carries the CPU seconds its worker spent cutting it."""

    def __init__(self, photos: list[np.ndarray], batch: int, s: CropSettings, seed: int) -> None:
        self.photos, self.batch, self.s, self.seed = photos, batch, s, seed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        info = get_worker_info()
        k = info.id if info is not None else 0
        rng = np.random.default_rng(self.seed) if k == 0 else np.random.default_rng([self.seed, k])
        while True:
            t0 = time.process_time()
            arrays = make_batch(self.photos, rng, self.batch, self.s)
            yield (*(torch.from_numpy(a) for a in arrays), torch.tensor(time.process_time() - t0, dtype=torch.float64))


class BatchStream:
    """Batches made ahead in worker processes (torch's DataLoader), from seeded generators. The
    loader takes the workers' batches in turn, so a run is reproducible given the seed, the
    number of workers and the step it resumes at. Processes, not threads, because cutting crops
    is Python and numpy work that holds the GIL: threads fed a lent GPU a few steps a second.
    The workers are forked where the platform can, so they share the decoded photos instead of
    each receiving a pickled copy."""

    def __init__(self, photos: list[np.ndarray], batch: int, s: CropSettings, seed: int, depth: int = 4,
                 workers: int = 1, pin_memory: bool = False) -> None:
        workers = max(1, workers)
        context = "fork" if "fork" in mp.get_all_start_methods() else None
        self._loader = DataLoader(_Crops(photos, batch, s, seed), batch_size=None, num_workers=workers,
                                  prefetch_factor=max(2, -(-depth // workers)), multiprocessing_context=context,
                                  pin_memory=pin_memory)
        self._batches: Iterator | None = iter(self._loader)
        self.cpu_seconds = 0.0  # spent by the workers on the batches taken so far

    def next(self) -> tuple[torch.Tensor, ...]:
        """(N,1,S,S) input L*, (N,3,S,S) target Lab, (N,3,S,S) target sRGB, as tensors."""
        if self._batches is None:
            raise RuntimeError("the batch stream is closed")
        *arrays, cpu = next(self._batches)
        self.cpu_seconds += float(cpu)
        return tuple(arrays)

    def close(self) -> None:
        """Stop the workers (dropping the loader's iterator shuts them down)."""
        self._batches = None
