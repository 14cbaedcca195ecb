"""Training objectives, one per kind of model.

The shipped ChromaNet learns a*b* two ways at once: a regression (right on average, but dull) and
a cross-entropy over a*b* bins whose targets are softly spread over the nearest bins and weighted
against the bins' frequency (mildly: strong rebalancing paints people blue). The regression is a
smooth L1 (v1), which learns the conditional median, or a squared error, which learns the
conditional mean: the prediction PSNR rewards, and a more colourful one where chroma is skewed.
The seed systems keep the losses of their reports.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def ab_prior(ab_samples: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Empirical frequency of each bin over sampled a*b* values (M, 2)."""
    d = ((ab_samples[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    counts = np.bincount(d.argmin(1), minlength=len(centres)).astype(np.float64)
    return (counts / counts.sum()).astype(np.float32)


def rebalance_weights(prior: np.ndarray, uniform_mix: float = 0.5, power: float = 0.5) -> np.ndarray:
    """Per-bin loss weights ((1-l) p + l/Q)^-power, normalised so their expectation under p is 1.
    power=1 is Zhang et al.'s full rebalancing; 0.5 is milder."""
    w = ((1.0 - uniform_mix) * prior + uniform_mix / len(prior)) ** -power
    return (w / (prior * w).sum()).astype(np.float32)


def soft_targets(ab: torch.Tensor, centres: torch.Tensor, k: int = 5, sigma: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,2,h,w) a*b* -> (N,Q,h,w) Gaussian-weighted k-nearest-bin targets, and the nearest bin."""
    n, _, h, w = ab.shape
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    d2 = torch.cdist(flat, centres) ** 2
    dk, ik = d2.topk(k, dim=1, largest=False)
    wk = torch.softmax(-dk / (2 * sigma**2), dim=1)
    target = torch.zeros(flat.shape[0], centres.shape[0], device=ab.device).scatter_(1, ik, wk)
    target = target.view(n, h, w, -1).permute(0, 3, 1, 2)
    return target, ik[:, 0].view(n, h, w)


REG_LOSSES = ("smooth-l1", "mse")
# Scales the squared error so its mean gradient matches the smooth L1's at the trained network's
# mean absolute error (0.075 in units of 100 a*b*, held-out crops): about 1 / (2 * 0.075).
# Switching losses then keeps the balance between the two heads.
MSE_WEIGHT = 6.0


def check_reg_loss(kind: str) -> str:
    """``kind`` if it names a regression loss, else a ValueError listing the choices."""
    if kind not in REG_LOSSES:
        raise ValueError(f"unknown regression loss {kind!r}; choose one of {', '.join(REG_LOSSES)}")
    return kind


def regression_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """The a*b* regression term on values in units of 100: ``smooth-l1`` or ``mse``."""
    if check_reg_loss(kind) == "mse":
        return MSE_WEIGHT * F.mse_loss(pred, target)
    return F.smooth_l1_loss(pred, target, beta=0.05)


def ab_regression(ab_reg: torch.Tensor, lab: torch.Tensor, kind: str = "smooth-l1") -> tuple[torch.Tensor, torch.Tensor]:
    """ChromaNet's regression term against the true a*b* pooled to the head's size, and that
    pooled target (the bins' targets are cut from it too)."""
    ab = F.adaptive_avg_pool2d(lab[:, 1:], ab_reg.shape[-2:])
    return regression_loss(ab_reg.float() / 100.0, ab / 100.0, kind), ab


def chromanet_loss(
    outputs: tuple[torch.Tensor, torch.Tensor],
    lab: torch.Tensor,
    centres: torch.Tensor,
    bin_weights: torch.Tensor,
    cls_weight: float = 0.02,
    reg_loss: str = "smooth-l1",
) -> tuple[torch.Tensor, dict[str, float]]:
    ab_reg, logits = outputs
    reg, ab = ab_regression(ab_reg, lab, reg_loss)
    target, nearest = soft_targets(ab, centres)
    ce = -(target * F.log_softmax(logits.float(), dim=1)).sum(1)
    cls = (ce * bin_weights[nearest]).mean()
    return reg + cls_weight * cls, {"reg": float(reg.detach()), "cls": float(cls.detach())}


def seed_rgb_loss(rgb_pred: torch.Tensor, rgb: torch.Tensor, scale: float) -> tuple[torch.Tensor, dict[str, float]]:
    """MSE on RGB; seed-unet works on 0-255 (scale 255), the batch-norm U-Net on [0, 1]."""
    mse = F.mse_loss(rgb_pred.float(), rgb * scale)
    return mse, {"mse": float(mse.detach())}


def koala_loss(ab_pred: torch.Tensor, lab: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """MSE on a*b* scaled to [-1, 1], as in Deep Koalarization."""
    mse = F.mse_loss(ab_pred.float(), lab[:, 1:] / 128.0)
    return mse, {"mse": float(mse.detach())}
