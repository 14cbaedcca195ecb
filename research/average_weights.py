"""Average weight files of one architecture, tensor by tensor (WiSE-FT, or a soup of checkpoints).

Two files: a fine-tuned network and the one it started from lie on one path in weight space; a
point between them (`--alpha`) can keep more of the start's robustness to photos unlike the
training photos. More files: the uniform mean of checkpoints along one training trajectory (each
session's end, at a low rate), a flatter point than any one of them (stochastic weight averaging).
Every tensor is averaged, batch-norm statistics and decoding buffers included, so calibrate the
result again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from colorize_cli.models.weights import load_model, save_weights


def mixing_weights(count: int, alpha: float | None) -> list[float]:
    """Each member's share: start and tuned at (1 - alpha, alpha) for two, else uniform."""
    if count < 2:
        raise SystemExit("give at least two weight files")
    if alpha is not None and count != 2:
        raise SystemExit(f"--alpha mixes two networks; {count} are averaged uniformly, so leave it out")
    if count == 2:
        a = 0.5 if alpha is None else alpha
        return [1.0 - a, a]
    return [1.0 / count] * count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("networks", type=Path, nargs="+", help="weight files; with two, the start then the fine-tuned one")
    parser.add_argument("--alpha", type=float, default=None, help="weight of the fine-tuned network (two files only; default 0.5)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    shares = mixing_weights(len(args.networks), args.alpha)
    loaded = [load_model(path) for path in args.networks]
    arches = sorted({info.arch for _, info in loaded})
    if len(arches) > 1:
        raise SystemExit(f"not one architecture: {' and '.join(arches)}")
    states = [model.state_dict() for model, _ in loaded]
    last, last_info = loaded[-1]
    mixed = {
        key: sum(share * state[key] for share, state in zip(shares, states)) if value.is_floating_point() else value
        for key, value in states[-1].items()
    }
    last.load_state_dict(mixed)
    average = {"members": [info.sha256 for _, info in loaded], "shares": shares}
    digest = save_weights(last, last_info.arch, args.out, dict(last_info.meta, average=average))
    print(f"wrote {args.out} ({len(shares)} networks, shares {', '.join(f'{s:.3f}' for s in shares)}; sha256 {digest[:12]})")


if __name__ == "__main__":
    main()
