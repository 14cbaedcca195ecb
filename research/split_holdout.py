"""Split a training run's held-out photos (holdout.txt) into two random halves: one to choose
decodings on, one to check the choice on.

`colorize train` writes holdout.txt sorted by path, so its first and second halves hold
different sources (objects, people and scenes against places); a seeded shuffle mixes every
source into both halves.

    python research/split_holdout.py runs/v2c/holdout.txt runs/choose.txt runs/check.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from colorize_cli.training.data import write_photo_list
from colorize_cli.training.loop import split_photos


def choose_and_check(photos: list, seed: int = 1) -> tuple[list, list]:
    """A run's held-out photos halved at random: (to choose decodings on, to check the choice on)."""
    check, choose = split_photos(photos, len(photos) // 2, seed)  # the same seeded draw training holds photos out with
    return choose, check


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("holdout", type=Path)
    ap.add_argument("choose", type=Path)
    ap.add_argument("check", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    lines = [ln for ln in a.holdout.read_text().splitlines() if ln.strip()]
    choose, check = choose_and_check(lines, a.seed)
    write_photo_list(a.choose, choose)
    write_photo_list(a.check, check)
    print(f"{len(choose)} photos to choose on -> {a.choose}; {len(check)} to check on -> {a.check}")


if __name__ == "__main__":
    main()
