"""Time one training step of each ChromaNet, as each is trained: `chromanet` (MobileNetV2, encoder
fine-tuned) against `chromanet-lite2` (EfficientNet-Lite2, encoder fixed), and the encoders alone.

Issue 11 names EfficientNet-Lite2 as a stronger encoder to try "if it pays for its time"; this
prints what that time is on this machine. Forward and backward at the training batch, timed in
turns in one run (the machines are shared, so only the ratios mean much):

    python research/time_encoders.py --batch 24 --size 128 --threads 2

`--bf16` adds the fine-tuned `chromanet-lite2` step with its forward pass autocast to bfloat16,
as `colorize train --bf16` runs it, beside the same step in float32:

    python research/time_encoders.py --batch 24 --size 176 --threads 2 --bf16

`--feature-loss W` adds the fine-tuned `chromanet-lite2` step with `colorize train
--feature-loss W`'s term (the fixed ImageNet network's features of the prediction and the photo)
beside the same step without it:

    python research/time_encoders.py --batch 24 --size 176 --threads 2 --feature-loss 0.05
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from colorize_cli.models import build
from colorize_cli.training.feature_loss import FeatureLoss, predicted_rgb, true_rgb
from colorize_cli.training.loop import TrainConfig, _param_groups


def _step(model: torch.nn.Module, lightness: torch.Tensor, bf16: bool = False,
          features: tuple[FeatureLoss, float, torch.Tensor] | None = None) -> Callable[[], None]:
    """One forward and backward pass; ``features`` (the loss, its weight, the photo) adds the
    feature term as training adds it."""
    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            ab_reg, logits = model(lightness)
        loss = ab_reg.float().mean() + logits.float().mean()
        if features is not None:
            feature_loss, weight, photo = features
            lab = torch.cat([lightness, torch.zeros_like(photo[:, :2])], dim=1)
            loss = loss + weight * feature_loss(predicted_rgb(lab, ab_reg), true_rgb(photo))
        loss.backward()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bf16", action="store_true", help="also time the fine-tuned Lite2 step in float32 and with bfloat16 autocast")
    ap.add_argument("--feature-loss", type=float, default=0.0,
                    help="also time the fine-tuned Lite2 step in float32 without and with this weight of feature loss")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nets = {arch: build(arch).train() for arch in ("chromanet", "chromanet-lite2")}
    for arch, net in nets.items():
        # chromanet's encoder fine-tuned (v1's recipe after its first 15 %), Lite2's fixed (session 8's)
        _param_groups(net, TrainConfig(data=(), out="", arch=arch, freeze_fraction=0.0 if arch == "chromanet" else 1.0))
    lightness = torch.rand(args.batch, 1, args.size, args.size) * 100
    rgb = torch.randn(args.batch, 3, args.size, args.size)
    # name -> (the module whose parameters are counted, one training step's work through it)
    steps: dict[str, tuple[torch.nn.Module, Callable[[], None]]] = {
        "mobilenetv2 encoder": (nets["chromanet"].encoder, lambda: nets["chromanet"].encoder(rgb)[-1].mean().backward()),
        "efficientnet-lite2 encoder (fixed)": (nets["chromanet-lite2"].encoder, lambda: nets["chromanet-lite2"].encoder(rgb)[-1].mean()),
        "chromanet (fine-tuned)": (nets["chromanet"], _step(nets["chromanet"], lightness)),
        "chromanet-lite2 (fixed)": (nets["chromanet-lite2"], _step(nets["chromanet-lite2"], lightness)),
    }
    if args.bf16 or args.feature_loss:
        tuned = build("chromanet-lite2").train().to(memory_format=torch.channels_last)
        _param_groups(tuned, TrainConfig(data=(), out="", arch="chromanet-lite2", freeze_fraction=0.0))
        x = lightness.contiguous(memory_format=torch.channels_last)  # as training feeds it
        steps["chromanet-lite2 (fine-tuned), float32"] = (tuned, _step(tuned, x))
    if args.bf16:
        steps["chromanet-lite2 (fine-tuned), bfloat16"] = (tuned, _step(tuned, x, bf16=True))
    if args.feature_loss:
        photo = torch.rand(args.batch, 3, args.size, args.size)
        steps["chromanet-lite2 (fine-tuned), feature loss"] = (tuned, _step(tuned, x, features=(FeatureLoss(), args.feature_loss, photo)))
    seconds = dict.fromkeys(steps, 0.0)
    for _, step in steps.values():  # warm-up
        step()
    for _ in range(args.rounds):
        for name, (_, step) in steps.items():
            start = time.perf_counter()
            step()
            seconds[name] += time.perf_counter() - start
    base = seconds["chromanet (fine-tuned)"]
    for name, (module, _) in steps.items():
        total = seconds[name]
        params = sum(p.numel() for p in module.parameters())
        print(f"{name:40s} {total / args.rounds:6.3f} s/step  {total / base:4.2f}x chromanet's step  {params / 1e6:5.2f} M parameters")
    if args.bf16:
        ratio = seconds["chromanet-lite2 (fine-tuned), bfloat16"] / seconds["chromanet-lite2 (fine-tuned), float32"]
        print(f"bfloat16 autocast: {ratio:.2f}x the float32 step's time")
    if args.feature_loss:
        ratio = seconds["chromanet-lite2 (fine-tuned), feature loss"] / seconds["chromanet-lite2 (fine-tuned), float32"]
        print(f"feature loss {args.feature_loss:g}: {ratio:.2f}x the float32 step's time")


if __name__ == "__main__":
    main()
