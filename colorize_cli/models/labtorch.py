"""sRGB -> CIE Lab in torch, for models that predict RGB and for losses. Same constants as
`colorize_cli.color`, which holds the numpy reference these are tested against."""

from __future__ import annotations

import torch

from ..color import EPSILON, KAPPA, RGB_TO_XYZ, WHITE_D65  # the CIE constants live once, in color.py


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
