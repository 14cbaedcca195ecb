"""A network's own a*b* for a gray image, as its upstream code computes them: no resize back,
no merge, no saturation. For setting a loaded checkpoint (``checkpoints.load_checkpoint``)
against upstream numbers, and for timing the network alone (``research/family_speed.py``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from colorize_cli.color import gray_to_lightness
from colorize_cli.models.spec import ModelSpec, model_spec


def _gray01(gray: np.ndarray) -> np.ndarray:
    gray = np.asarray(gray)
    if gray.ndim == 3 and gray.shape[-1] == 1:
        gray = gray[..., 0]
    if gray.ndim != 2:
        raise ValueError(f"a gray image is 2-D (H, W), not {gray.shape}")
    if gray.dtype == np.uint8:
        return gray.astype(np.float32) / np.float32(255)
    if gray.dtype == np.uint16:
        return gray.astype(np.float32) / np.float32(65535)
    if np.issubdtype(gray.dtype, np.floating):
        return np.clip(gray.astype(np.float32), 0.0, 1.0)
    raise ValueError(f"gray image dtype {gray.dtype} is not uint8, uint16 or float in [0, 1]")


def predict_raw_ab(model: nn.Module, gray: np.ndarray) -> np.ndarray:
    """The network's own a*b* for a gray image: (h, w, 2) float32 in Lab units, at the network's
    working resolution, with no post-processing (no resize back, no merge, no saturation).

    ``gray``: (H, W) uint8, uint16, or float in [0, 1], display-encoded like a scan.
    A free-size model sees the image at its own size (H and W must be multiples of its
    ``multiple_of``; nothing is padded, so the numbers can be set against upstream code); its
    a*b* come out at H/output_scale. A fixed-size model (DDColor) sees it resized to its square,
    as upstream does, and its a*b* come out at that square."""
    spec: ModelSpec = model_spec(model)
    g = _gray01(gray)
    h, w = g.shape
    if spec.fixed_size is None and (h % spec.multiple_of or w % spec.multiple_of):
        raise ValueError(f"{spec.family} takes sides that are multiples of {spec.multiple_of}, not {h}x{w}")
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            t = torch.from_numpy(g)[None, None].to(device)
            if spec.input_kind == "gray_rgb":
                ab = model.predict_ab_from_gray(t)
            else:
                lightness = torch.from_numpy(np.ascontiguousarray(gray_to_lightness(g)))[None, None].to(device)
                if spec.fixed_size is not None and (h, w) != (spec.fixed_size, spec.fixed_size):
                    lightness = torch.nn.functional.interpolate(
                        lightness, size=(spec.fixed_size, spec.fixed_size), mode="bilinear", align_corners=False)
                ab = model.predict_ab(lightness)
    finally:
        model.train(was_training)
    return ab[0].float().permute(1, 2, 0).cpu().numpy()


__all__ = ["predict_raw_ab"]
