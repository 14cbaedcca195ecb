"""Write the photo lists the model card's rule scores on, under runs/, from the data alone.

`runs/` is not committed, so each session rebuilds them the same way (the rule compares numbers
across sessions only because the photos are the same):

- holdout.txt: the photos `colorize train` holds out by default (300, seed 0), so none of them
  trained the network scored;
- choose.txt / check.txt: holdout.txt halved by `research/split_holdout.py`'s seeded draw;
- train150.txt: the other training photos shuffled with `random.Random(6)`, the first 150;
- old24.txt: the 16 old prints of the black-and-white folder and its first 8 Livonian coast photos.

    python research/rule_lists.py ../shared/data
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from colorize_cli.training.data import list_photos, write_photo_list
from colorize_cli.training.loop import TrainConfig, split_photos
from split_holdout import choose_and_check  # research/ is on the path when this runs as a script


def _write(path: Path, photos: list) -> None:
    write_photo_list(path, photos)
    print(f"{len(photos):4d} photos -> {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="the shared data folder (holding train/ and bw/)")
    ap.add_argument("--out", type=Path, default=Path("runs"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    default = TrainConfig(data=(), out="")  # only its split: what `colorize train` holds out
    training, held = split_photos(list_photos([a.data / "train"]), default.holdout, default.seed)
    choose, check = choose_and_check(held)
    shuffled = list(training)
    random.Random(6).shuffle(shuffled)
    bw = sorted((a.data / "bw").rglob("*.jpg"))
    livonia = [p for p in bw if "livonia" in str(p).lower()]
    prints = [p for p in bw if p not in livonia]
    _write(a.out / "holdout.txt", held)
    _write(a.out / "choose.txt", choose)
    _write(a.out / "check.txt", check)
    _write(a.out / "train150.txt", shuffled[:150])
    _write(a.out / "old24.txt", sorted(prints[:16] + livonia[:8]))


if __name__ == "__main__":
    main()
