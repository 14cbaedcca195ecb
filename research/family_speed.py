"""CPU seconds per image of each supported model family at its own input size, in one run.

Speed does not depend on the weights' values, so each family is built with random weights in its
published layout (DDColor-T and DDColor-L with spandrel-extra-arches' own class, ECCV'16 and
SIGGRAPH'17 with ours, the shipped ChromaNet from its file) and timed through the same adapter the
pipeline uses (models.raw.predict_raw_ab): the network alone, one image per call, the
median of --repeats calls after one warm-up. Also prints each time as a ratio to ChromaNet's,
measured in the same run (compare ratios across machines, not seconds).

    python research/family_speed.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F


def settle_spectral_norms(state: dict, iterations: int = 20) -> None:
    """Power iterations on every spectral-norm (u, v) pair, so random weights give finite outputs."""
    for key in [k for k in state if k.endswith(".weight_orig")]:
        base = key[: -len("_orig")]
        w = state[key].reshape(state[key].shape[0], -1)
        u, v = state[base + "_u"], state[base + "_v"]
        for _ in range(iterations):
            v = F.normalize(w.t() @ u, dim=0)
            u = F.normalize(w @ v, dim=0)
        state[base + "_u"], state[base + "_v"] = u.contiguous(), v.contiguous()


def ddcolor(encoder: str, size: int = 512):
    from colorize_cli.models.ddcolor import import_spandrel, load_ddcolor

    import_spandrel()
    from spandrel_extra_arches.architectures.DDColor import DDColor as Upstream

    net = Upstream(encoder_name=encoder, decoder_name="MultiScaleColorDecoder", input_size=(size, size), num_output_channels=2,
                   last_norm="Spectral", do_normalize=False, num_queries=100, num_scales=3, dec_layers=9)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    settle_spectral_norms(state)
    return load_ddcolor(state, size)


def models() -> dict[str, tuple[torch.nn.Module, int]]:
    from colorize_cli.models.weights import load_model
    from colorize_cli.models.zhang import ECCV16, SIGGRAPH17

    shipped, _ = load_model()
    return {
        "chromanet-v1 (shipped)": (shipped, 256),
        "ECCV'16 (Zhang et al.)": (ECCV16().eval(), 256),
        "SIGGRAPH'17 (Zhang et al., automatic)": (SIGGRAPH17().eval(), 256),
        "DDColor-T (paper_tiny)": (ddcolor("convnext-t"), 512),
        "DDColor-L (paper, modelscope, artistic)": (ddcolor("convnext-l"), 512),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from colorize_cli.models.raw import predict_raw_ab

    rows = []
    for name, (model, size) in models().items():
        gray = np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)
        predict_raw_ab(model, gray)  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            predict_raw_ab(model, gray)
            times.append(time.perf_counter() - t0)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        rows.append((name, size, params, statistics.median(times)))
    base = rows[0][3]
    print(f"{'family':42} {'input':>9} {'params M':>9} {'s/image':>8} {'x chromanet':>12}  ({args.threads} threads)")
    for name, size, params, secs in rows:
        print(f"{name:42} {size:>4}x{size:<4} {params:9.1f} {secs:8.2f} {secs / base:12.1f}")


if __name__ == "__main__":
    main()
