"""sRGB <-> CIE Lab in torch, for models that predict RGB and for losses. Same constants as
`colorize_cli.color`, which holds the numpy reference these are tested against."""

from __future__ import annotations

import torch

from colorize_cli.color import EPSILON, KAPPA, RGB_TO_XYZ, WHITE_D65, XYZ_TO_RGB  # the CIE constants live once, in color.py


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) sRGB in [0,1] -> (N,3,H,W) Lab."""
    rgb = rgb.float()
    lin = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)
    m = torch.as_tensor(RGB_TO_XYZ / WHITE_D65[:, None], dtype=lin.dtype, device=lin.device)
    xyz = torch.einsum("ij,njhw->nihw", m, lin)
    f = torch.where(xyz > EPSILON, xyz.clamp(min=EPSILON) ** (1.0 / 3.0), (KAPPA * xyz + 16.0) / 116.0)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def rgb_to_ab(rgb: torch.Tensor) -> torch.Tensor:
    return rgb_to_lab(rgb)[:, 1:]


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) Lab -> (N,3,H,W) sRGB in [0,1], out-of-gamut colours clipped per channel: the
    differentiable inverse a loss on RGB needs (the pipeline's merge keeps L* instead)."""
    lab = lab.float()
    fy = (lab[:, 0] + 16.0) / 116.0
    f = torch.stack([fy + lab[:, 1] / 500.0, fy, fy - lab[:, 2] / 200.0], dim=1)
    t = torch.where(f**3 > EPSILON, f**3, (116.0 * f - 16.0) / KAPPA)
    m = torch.as_tensor(XYZ_TO_RGB * WHITE_D65[None, :], dtype=t.dtype, device=t.device)
    lin = torch.einsum("ij,njhw->nihw", m, t).clamp(0.0, 1.0)
    return torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055)
