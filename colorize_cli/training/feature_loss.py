"""A feature (perceptual) loss: how far the predicted photo's ImageNet features are from the true
photo's, through a fixed EfficientNet-Lite2 with its ImageNet weights (not the encoder being
fine-tuned, which would learn to make the distance small instead of the colours right).

Only the first stages (strides 2 to 8) are used: they respond to colour and texture, where the
deeper ones respond to what the object is, which the grey input already tells. The prediction
it judges is the a*b* regression, upsampled and merged with the true L*: the same colours the
pixel loss judges, compared as patches and edges instead of pixel by pixel. An option of `colorize train`
(`--feature-loss`, its weight; 0, the default, leaves the objective as v1's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colorize_cli.models.efficientnet_lite import EfficientNetLite2Features
from colorize_cli.models.imagenet import load_imagenet
from colorize_cli.models.labtorch import lab_to_rgb

DEPTH = 7  # blocks 0-6: the taps at strides 2, 4 and 8
SCALE = 0.5  # judged at half the crop's size: the a*b* come at a quarter, and the cost falls fourfold


def _scaled(image: torch.Tensor, scale: float) -> tuple[int, int]:
    h, w = image.shape[-2:]
    return round(h * scale), round(w * scale)


def predicted_rgb(lab: torch.Tensor, ab_reg: torch.Tensor, scale: float = SCALE) -> torch.Tensor:
    """The true L* (N,1+,H,W) with the regressed a*b* (N,2,h,w), both brought to ``scale`` x H x W,
    as sRGB."""
    size = _scaled(lab, scale)
    lightness = F.interpolate(lab[:, :1].float(), size=size, mode="area")
    ab = F.interpolate(ab_reg.float(), size=size, mode="bilinear", align_corners=False)
    return lab_to_rgb(torch.cat([lightness, ab], dim=1))


def true_rgb(rgb: torch.Tensor, scale: float = SCALE) -> torch.Tensor:
    """The photo (N,3,H,W) at the size ``predicted_rgb`` gives."""
    return F.interpolate(rgb.float(), size=_scaled(rgb, scale), mode="area")


class FeatureLoss(nn.Module):
    """Mean over the taps of the squared feature difference, relative to the true features' mean
    square, so each stage counts alike whatever its scale. Fixed: no parameter takes a gradient,
    and its batch norms keep their ImageNet statistics (it never leaves eval mode)."""

    def __init__(self, depth: int = DEPTH) -> None:
        super().__init__()
        self.encoder = EfficientNetLite2Features()
        load_imagenet(self.encoder)
        self.depth = depth
        self.register_buffer("mean", torch.tensor(self.encoder.input_mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.encoder.input_std).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FeatureLoss":
        return super().train(False)

    def features(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder.early_taps((rgb - self.mean) / self.std, self.depth)[0]

    def forward(self, rgb_pred: torch.Tensor, rgb_true: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            true = self.features(rgb_true.float())
        pred = self.features(rgb_pred.float())
        terms = [F.mse_loss(p, t) / t.pow(2).mean().clamp_min(1e-8) for p, t in zip(pred, true)]
        return torch.stack(terms).mean()
