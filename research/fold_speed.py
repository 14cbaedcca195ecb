"""CPU seconds per batch of the shipped network with and without its batch norms folded into the
convolutions before them (colorize_cli/inference/fold.py), in one run, and the largest a*b*
difference between the two.

The shipped weights from their file, a batch of --batch random 256 x 256 L* images in
channels-last memory (as the engine feeds them), --threads torch threads; the median of
--repeats calls of each, taken in turns so that both see the same machine.

    python research/fold_speed.py [--batch 8] [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from colorize_cli.inference.fold import fold_batch_norms
from colorize_cli.models.weights import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    plain, _ = load_model(None)  # in eval mode
    folded = copy.deepcopy(plain)
    n = fold_batch_norms(folded)
    plain, folded = (m.to(memory_format=torch.channels_last) for m in (plain, folded))
    x = (torch.rand(args.batch, 1, 256, 256, generator=torch.Generator().manual_seed(0)) * 100).contiguous(
        memory_format=torch.channels_last)
    times: dict[str, list[float]] = {"plain": [], "folded": []}
    with torch.inference_mode():
        diff = (plain.predict_ab(x) - folded.predict_ab(x)).abs().max().item()  # also the warm-up
        for _ in range(args.repeats):
            for name, net in (("plain", plain), ("folded", folded)):
                t0 = time.process_time()
                net.predict_ab(x)
                times[name].append(time.process_time() - t0)
    p, f = statistics.median(times["plain"]), statistics.median(times["folded"])
    print(f"{n} batch norms folded; batch of {args.batch} at 256 x 256, {args.threads} thread(s), median of {args.repeats}")
    print(f"plain {p:.3f} CPU-s, folded {f:.3f} CPU-s: {f / p:.2f}x; largest a*b* difference {diff:.2e}")


if __name__ == "__main__":
    main()
