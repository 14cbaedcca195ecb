"""One 16-to-8-bit rule everywhere: to the nearest 8-bit level (v / 257), never the top byte.

The thumbnails, the in-memory API and the file writer used to disagree (two truncated, one
rounded); each is checked here against numpy's own rounding, not against our helper."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from colorize_cli.io import scanfile as imaging
from colorize_cli.api import colorize_image, from_module
from colorize_cli.inference.predict import colorize_gray
from colorize_cli.models.weights import ModelInfo
from colorize_cli.settings import ColorSettings
from colorize_cli.report.thumbnails import to_uint8

# Values where rounding and truncation differ (255 -> 1 rounded, 0 truncated), and the ends.
EDGES = np.array([0, 128, 129, 255, 256, 383, 384, 32767, 32768, 65279, 65407, 65535], np.uint16)


def nearest(a16: np.ndarray) -> np.ndarray:
    return np.rint(a16.astype(np.float64) / 257.0).astype(np.uint8)


def test_the_rule_rounds_to_nearest_for_every_value() -> None:
    every = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(imaging.to_8bit(every), nearest(every))
    assert imaging.to_8bit(np.array([255], np.uint16))[0] == 1  # truncation (>> 8) would give 0
    assert np.array_equal(to_uint8(every), nearest(every))
    assert np.array_equal(to_uint8(every.astype(">u2")), nearest(every))  # big-endian TIFF data


class Gray(nn.Module):
    """Predicts no colour at all, so the result's channels equal the input's gray exactly."""

    stride = 1
    output_scale = 1
    default_render_size = 32

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        return torch.zeros(lightness.shape[0], 2, *lightness.shape[2:])


def test_colorize_image_hands_back_rounded_8_bit() -> None:
    """A 16-bit scan colorized in memory comes back as 8-bit RGB: the 16-bit result, rounded."""
    gray16 = np.resize(EDGES, (6, 24)).astype(np.uint16)
    model = from_module(Gray(), ModelInfo("gray", "test", "0" * 64, {}), device="cpu")
    settings = ColorSettings(render_size=32)
    full = colorize_gray(gray16, model.predictor, settings, 32, out_dtype=np.uint16)
    assert full.dtype == np.uint16 and len(np.unique(full % 257)) > 1  # not all on exact 8-bit levels
    out = colorize_image(Image.fromarray(gray16), model, settings)
    assert out.mode == "RGB" and out.size == (24, 6)
    assert np.array_equal(np.asarray(out), nearest(full))
