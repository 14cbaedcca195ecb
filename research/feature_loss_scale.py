"""How strongly `colorize train --feature-loss W` pulls on the a*b* regression, against the
regression loss itself: the gradient norms of the two terms on the regression output, on training
crops cut as training cuts them. A weight is sensible when the ratio is of order 1 (the model
card's session 18 chose 0.05 by it):

    python research/feature_loss_scale.py weights/candidates/chromanet-lite2-soup20.safetensors ../shared/data/train
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from colorize_cli.models.weights import load_model
from colorize_cli.training.data import CropSettings, list_photos, load_photos, make_batch
from colorize_cli.training.feature_loss import FeatureLoss, predicted_rgb, true_rgb
from colorize_cli.training.loop import _freeze_pretrained_bn
from colorize_cli.training.losses import ab_regression


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("data", type=Path, help="folder of colour photos")
    ap.add_argument("--photos", type=int, default=400, help="photos to cut crops from (the first, sorted)")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--crop", type=int, default=176)
    ap.add_argument("--min-scale", type=float, default=0.73)
    ap.add_argument("--weight", type=float, default=0.05, help="the --feature-loss weight to report the ratio at")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_model(args.weights)
    model.train()
    _freeze_pretrained_bn(model)  # as training runs it
    photos, _ = load_photos(list_photos([args.data])[: args.photos])
    features = FeatureLoss()
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(args.batches):
        lightness, lab, rgb = (torch.from_numpy(a) for a in make_batch(photos, rng, args.batch, CropSettings(size=args.crop, min_scale=args.min_scale)))
        ab_reg, _ = model(lightness)
        reg, _ = ab_regression(ab_reg, lab)
        feat = features(predicted_rgb(lab, ab_reg), true_rgb(rgb))
        g_reg = torch.autograd.grad(reg, ab_reg, retain_graph=True)[0].norm()
        g_feat = torch.autograd.grad(feat, ab_reg)[0].norm()
        ratios.append(float(g_feat / g_reg))
        print(f"regression {float(reg.detach()):.5f}, feature {float(feat.detach()):.5f}; gradient norm on the regression: "
              f"feature / regression {ratios[-1]:.1f} at weight 1")
    mean = float(np.mean(ratios))
    print(f"mean over {len(ratios)} batches: {mean:.1f} at weight 1, {args.weight * mean:.2f} at weight {args.weight:g}")


if __name__ == "__main__":
    main()
