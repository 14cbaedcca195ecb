"""Put a trained ChromaNet and a trained ChromaNetLite2 side by side as one `chromanet-pair`
weights file, whose predictions are the two networks' averaged (see `ChromaNetPair`).

The pair's decoding starts as the regression alone; calibrate the result like any network:

    python research/pair_weights.py weights/chromanet-v1.safetensors \
        weights/candidates/chromanet-lite2-s12.safetensors --out runs/pair.safetensors
    colorize calibrate runs/pair.safetensors runs/choose.txt --min-ratio 0.70 --min-vivid-ratio 0.68 --out ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from colorize_cli.models import build
from colorize_cli.models.weights import load_model, save_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="a chromanet weights file")
    parser.add_argument("second", type=Path, help="a chromanet-lite2 weights file")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    first, first_info = load_model(args.first)
    second, second_info = load_model(args.second)
    for info, arch in ((first_info, "chromanet"), (second_info, "chromanet-lite2")):
        if info.arch != arch:
            raise SystemExit(f"{info.name} is a {info.arch!r} network; this place takes a {arch!r} one")
    pair = build("chromanet-pair")
    pair.first.load_state_dict(first.state_dict())
    pair.second.load_state_dict(second.state_dict())
    members = [{"name": i.name, "arch": i.arch, "sha256": i.sha256} for i in (first_info, second_info)]
    digest = save_weights(pair, "chromanet-pair", args.out, {"members": members})
    print(f"wrote {args.out} (sha256 {digest[:12]})")


if __name__ == "__main__":
    main()
