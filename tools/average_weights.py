"""Average two weight files of one architecture, tensor by tensor (WiSE-FT).

A fine-tuned network and the one it started from lie on one path in weight space; a point between
them can keep more of the start's robustness to photos unlike the training photos. Every tensor is
averaged, batch-norm statistics and decoding buffers included, so calibrate the result again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from colorize_cli.models.weights import load_model, save_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("start", type=Path, help="the network fine-tuning started from")
    parser.add_argument("tuned", type=Path, help="the fine-tuned network")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the fine-tuned network")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start, start_info = load_model(args.start)
    tuned, tuned_info = load_model(args.tuned)
    if start_info.arch != tuned_info.arch:
        raise SystemExit(f"not one architecture: {start_info.arch} and {tuned_info.arch}")
    a = start.state_dict()
    mixed = {k: torch.lerp(a[k], v, args.alpha) if v.is_floating_point() else v for k, v in tuned.state_dict().items()}
    tuned.load_state_dict(mixed)
    meta = dict(tuned_info.meta, average={"start": start_info.sha256, "tuned": tuned_info.sha256, "alpha": args.alpha})
    digest = save_weights(tuned, tuned_info.arch, args.out, meta)
    print(f"wrote {args.out} (alpha {args.alpha}, sha256 {digest[:12]})")


if __name__ == "__main__":
    main()
