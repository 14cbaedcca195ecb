"""How fast training crops are cut: one generator in this process, N threads (how `BatchStream`
cut them before it used processes), and `BatchStream` with N worker processes, on the same
photos, in one run (ratios, since machines here are shared).

A lent GPU waits on this: it takes as many crops a second as the workers cut.

    python research/time_crops.py ../shared/data/train --workers 2 --crop 176 --batch 64
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from colorize_cli.training.data import BatchStream, CropSettings, list_photos, load_photos, make_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("--photos", type=int, default=500, help="how many photos to load")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--crop", type=int, default=176)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=20, help="batches timed each way")
    ap.add_argument("--marks", type=float, default=0.15)
    a = ap.parse_args()
    photos, _ = load_photos(list_photos([a.src])[: a.photos])
    s = CropSettings(size=a.crop, min_scale=0.73, marks=a.marks)
    rng = np.random.default_rng(0)
    make_batch(photos, rng, a.batch, s)
    t0 = time.perf_counter()
    for _ in range(a.batches):
        make_batch(photos, rng, a.batch, s)
    one = a.batches * a.batch / (time.perf_counter() - t0)
    gens = [np.random.default_rng([1, k]) for k in range(a.workers)]
    with ThreadPoolExecutor(a.workers) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda k: [make_batch(photos, gens[k], a.batch, s) for _ in range(a.batches // a.workers)], range(a.workers)))
        threads = (a.batches // a.workers) * a.workers * a.batch / (time.perf_counter() - t0)
    stream = BatchStream(photos, a.batch, s, seed=0, workers=a.workers)
    try:
        stream.next()  # the workers are started and have filled their queue once
        t0 = time.perf_counter()
        for _ in range(a.batches):
            stream.next()
        many = a.batches * a.batch / (time.perf_counter() - t0)
    finally:
        stream.close()
    print(f"one generator in this process: {one:.0f} crops/s (1.00x); {a.workers} threads: {threads:.0f} crops/s "
          f"({threads / one:.2f}x); {a.workers} worker processes: {many:.0f} crops/s ({many / one:.2f}x)")


if __name__ == "__main__":
    main()
