"""Training objectives by name, as the architecture registry (``models.ARCHS``) names them.

Each factory gets the model, the training photos, the device and the run's seed, and returns
``objective(outputs, lab, rgb) -> (loss, parts)``; the spec's ``loss_args`` are its keywords.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from colorize_cli.models import arch_spec
from colorize_cli.training import losses
from colorize_cli.training.data import CropSettings, make_batch

Objective = Callable[[object, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]


def chromanet(model: nn.Module, photos: list[np.ndarray], device: torch.device, seed: int, reg_loss: str = "smooth-l1") -> Objective:
    """Regression (``reg_loss``) plus classification over a*b* bins, rebalanced by the bins' prior on
    these photos (sampled at the model's output resolution)."""
    rng = np.random.default_rng(seed + 1)
    _, lab, _ = make_batch(photos, rng, 256, CropSettings(size=64, damage=0.0))
    step = model.output_scale
    sample = lab[:, 1:, ::step, ::step].transpose(0, 2, 3, 1).reshape(-1, 2)
    centres = model.bin_centres.cpu().numpy()
    weights = torch.from_numpy(losses.rebalance_weights(losses.ab_prior(sample, centres))).to(device)
    centres_t = model.bin_centres.float()
    return lambda out, lab, rgb: losses.chromanet_loss(out, lab, centres_t, weights, reg_loss=reg_loss)


def seed_rgb(model: nn.Module, photos: list[np.ndarray], device: torch.device, seed: int, peak: float) -> Objective:
    """MSE on RGB, with the network's output range (0-``peak``)."""
    return lambda out, lab, rgb: losses.seed_rgb_loss(out, rgb, peak)


def koala(model: nn.Module, photos: list[np.ndarray], device: torch.device, seed: int) -> Objective:
    return lambda out, lab, rgb: losses.koala_loss(out, lab)


OBJECTIVES: dict[str, Callable[..., Objective]] = {"chromanet": chromanet, "seed-rgb": seed_rgb, "koala": koala}


def make_objective(arch: str, model: nn.Module, photos: list[np.ndarray], device: torch.device, seed: int,
                   reg_loss: str = "smooth-l1") -> Objective:
    """``reg_loss`` chooses ChromaNet's regression term; other architectures keep their reports' loss."""
    spec = arch_spec(arch)
    extra = {}
    if losses.check_reg_loss(reg_loss) != "smooth-l1":
        if spec.loss != "chromanet":
            raise ValueError(f"--reg-loss {reg_loss} applies to chromanet, not {arch!r}")
        extra["reg_loss"] = reg_loss
    return OBJECTIVES[spec.loss](model, photos, device, seed, **dict(spec.loss_args), **extra)
