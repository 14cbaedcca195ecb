"""Split a training run's held-out photos (holdout.txt) into two random halves: one to choose
decodings on, one to check the choice on.

`colorize train` writes holdout.txt sorted by path, so its first and second halves hold
different sources (objects, people and scenes against places); a seeded shuffle mixes every
source into both halves.

    python tools/split_holdout.py runs/v2c/holdout.txt runs/choose.txt runs/check.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def split(lines: list[str], seed: int) -> tuple[list[str], list[str]]:
    order = np.random.default_rng(seed).permutation(len(lines))
    half = len(lines) // 2
    return sorted(lines[i] for i in order[:half]), sorted(lines[i] for i in order[half:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("holdout", type=Path)
    ap.add_argument("choose", type=Path)
    ap.add_argument("check", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    lines = [ln for ln in a.holdout.read_text().splitlines() if ln.strip()]
    first, second = split(lines, a.seed)
    a.choose.write_text("".join(f"{ln}\n" for ln in first))
    a.check.write_text("".join(f"{ln}\n" for ln in second))
    print(f"{len(first)} photos to choose on -> {a.choose}; {len(second)} to check on -> {a.check}")


if __name__ == "__main__":
    main()
