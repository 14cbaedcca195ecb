"""Pack a copy of the training photos small enough to travel to a lent GPU machine.

The `device` tool sends at most 64 MiB of working tree, so this writes re-encoded photos (JPEG, or
WebP, which stores the chroma at half size and so fits more photos in the same bytes) into an
ignored folder (default `gpu-pack/photos`) until a byte budget is reached, taking photos in a
seeded random order. The photos `colorize train` holds out (same split: seed, count) are never
packed, so the GPU run's checkpoint can be calibrated and checked on them here like any other.

    python research/pack_training_photos.py ../shared/data/train --mib 32
    python research/pack_training_photos.py ../shared/data/train --mib 44 --format webp --quality 75
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from colorize_cli.training.data import list_photos, load_photos
from colorize_cli.training.loop import split_photos


def pack(src: Path, out: Path, mib: float, short_side: int, quality: int, holdout: int, seed: int, fmt: str = "jpeg") -> tuple[int, int]:
    """Write photos into ``out`` until ``mib`` MiB; returns (photos written, bytes written)."""
    train, _ = split_photos(list_photos([src]), holdout, seed)
    order = np.random.default_rng(seed + 7).permutation(len(train))
    out.mkdir(parents=True, exist_ok=True)
    budget, total, n = int(mib * 2**20), 0, 0
    for i in order:
        kept, _ = load_photos([train[i]])  # the colourless and tiny ones are dropped, as in training
        if not kept:
            continue
        im = Image.fromarray(kept[0])
        scale = short_side / min(im.size)
        if scale < 1:
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
        buf = io.BytesIO()
        if fmt == "webp":
            im.save(buf, "WEBP", quality=quality, method=4)  # chroma at half size: the targets are smooth
        else:
            im.save(buf, "JPEG", quality=quality, subsampling=0)
        if total + buf.tell() > budget:
            break
        (out / f"{n:05d}.{'webp' if fmt == 'webp' else 'jpg'}").write_bytes(buf.getvalue())
        total += buf.tell()
        n += 1
    return n, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="folder of training photos (e.g. ../shared/data/train)")
    ap.add_argument("--out", type=Path, default=Path("gpu-pack/photos"))
    ap.add_argument("--mib", type=float, default=32.0, help="byte budget of the pack, MiB (the tree that travels holds 64 MiB in all, the weights included)")
    ap.add_argument("--short-side", type=int, default=176, help="photos larger than this are scaled down, px")
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--format", choices=("jpeg", "webp"), default="jpeg")
    ap.add_argument("--holdout", type=int, default=300, help="as `colorize train --holdout`")
    ap.add_argument("--seed", type=int, default=0, help="as `colorize train --seed`")
    a = ap.parse_args()
    n, total = pack(a.src, a.out, a.mib, a.short_side, a.quality, a.holdout, a.seed, a.format)
    print(f"{n} photos, {total / 2**20:.1f} MiB in {a.out}")


if __name__ == "__main__":
    main()
