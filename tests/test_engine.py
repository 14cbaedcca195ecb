"""The colorization core and the batch engine, on generated images and small networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from colorize_cli.api import colorize_image, from_module
from colorize_cli.color import gray_to_lightness, rgb_to_lab
from colorize_cli.inference.predict import Predictor, predict_working_ab, working_shape
from colorize_cli.models.weights import ModelInfo
from colorize_cli.settings import ColorSettings
from colorize_cli.training.metrics import ciede2000


class LocalNet(nn.Module):
    """A small, purely local network (receptive field 7 px, far below the tile overlap), so a
    tiled prediction must reproduce the untiled one wherever the blending is right."""

    stride = 1
    output_scale = 1
    default_render_size = 64

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 2, 3, padding=1))

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        return 40.0 * torch.tanh(self.net(lightness / 50.0 - 1.0))


def scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A gray test picture with smooth shading, edges and texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 128 + 60 * np.sin(x / 37.0) * np.cos(y / 23.0) + 30 * ((x // 50 + y // 50) % 2) + rng.normal(0, 6, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


def local_predictor() -> Predictor:
    return Predictor(LocalNet().eval(), torch.device("cpu"), None)


def test_working_shape_keeps_aspect_and_panoramas_stay_readable() -> None:
    assert working_shape(2000, 3000, 300) == (200, 300)
    assert working_shape(3000, 2000, 300) == (300, 200)
    h, w = working_shape(300, 8000, 256)  # a panorama is not squashed to a sliver
    assert h == 128 and abs(w / h - 8000 / 300) < 0.2


def test_tiled_prediction_matches_untiled() -> None:
    lightness = gray_to_lightness(scene(300, 700).astype(np.float32) / 255.0)
    predictor = local_predictor()
    whole = predict_working_ab(predictor, lightness, ColorSettings(tile_size=1024, tile_overlap=32), batch_size=4)
    tiled = predict_working_ab(predictor, lightness, ColorSettings(tile_size=192, tile_overlap=32), batch_size=4)
    lab_whole = np.dstack([lightness, whole])
    lab_tiled = np.dstack([lightness, tiled])
    assert float(ciede2000(lab_whole, lab_tiled).mean()) < 1.0
    # no seam: the largest column-to-column jump of the tiled result is no larger than the untiled one's
    jump_tiled = np.abs(np.diff(tiled, axis=1)).max()
    jump_whole = np.abs(np.diff(whole, axis=1)).max()
    assert jump_tiled <= jump_whole * 1.05 + 1e-3


def test_colorize_image_keeps_size_and_luminance() -> None:
    gray = scene(157, 233)
    model = from_module(LocalNet(), ModelInfo("local", "test", "0" * 64, {}), device="cpu")
    out = colorize_image(Image.fromarray(gray, "L"), model, ColorSettings(render_size=96))
    assert out.size == (233, 157) and out.mode == "RGB"
    rgb = np.asarray(out, dtype=np.float32) / 255.0
    lab = rgb_to_lab(rgb)
    # L* of the output equals L* of the input up to 8-bit rounding of the output
    assert np.abs(lab[..., 0] - gray_to_lightness(gray.astype(np.float32) / 255.0)).max() < 0.6
    assert np.hypot(lab[..., 1], lab[..., 2]).mean() > 1.0  # and it does carry colour


def test_colorize_image_16bit_and_alpha() -> None:
    gray16 = (scene(64, 80).astype(np.uint16) * 257)
    model = from_module(LocalNet(), ModelInfo("local", "test", "0" * 64, {}), device="cpu")
    out = colorize_image(Image.fromarray(gray16), model, ColorSettings(render_size=64))
    assert out.size == (80, 64)
    rgba = Image.fromarray(np.dstack([scene(40, 50), np.full((40, 50), 128, np.uint8)]), "LA")
    out = colorize_image(rgba, model, ColorSettings(render_size=64))
    assert out.mode == "RGBA" and np.asarray(out)[..., 3].min() == 128


def test_oom_splits_batches_then_tiles() -> None:
    """A device that cannot hold more than 1 tile of 128x128 still gets every scan done."""

    class Tight(LocalNet):
        calls: list[tuple[int, int, int]] = []

        def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
            n, _, h, w = lightness.shape
            Tight.calls.append((n, h, w))
            if n * h * w > 128 * 128:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super().predict_ab(lightness)

    predictor = Predictor(Tight().eval(), torch.device("cpu"), None)
    lightness = gray_to_lightness(scene(200, 300).astype(np.float32) / 255.0)
    ab = predict_working_ab(predictor, lightness, ColorSettings(tile_size=512, tile_overlap=16), batch_size=4)
    assert ab.shape == (200, 300, 2)
    assert any(n * h * w > 128 * 128 for n, h, w in Tight.calls)  # it did try bigger first
    assert max(h for _, h, _ in Tight.calls[-3:]) <= 128  # and ended on small tiles


def test_non_memory_errors_are_not_swallowed() -> None:
    class Broken(LocalNet):
        def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
            raise ValueError("shape mismatch in layer 3")

    predictor = Predictor(Broken().eval(), torch.device("cpu"), None)
    with pytest.raises(ValueError, match="shape mismatch"):
        predict_working_ab(predictor, np.zeros((32, 32), np.float32), ColorSettings(), batch_size=2)


def test_scans_of_one_bucket_batch_together_and_give_what_they_give_alone() -> None:
    from colorize_cli.models import build

    torch.manual_seed(0)
    predictor = Predictor(build("chromanet").eval(), torch.device("cpu"), None)
    a = gray_to_lightness(scene(100, 150, 1).astype(np.float32) / 255.0)
    b = gray_to_lightness(scene(97, 160, 2).astype(np.float32) / 255.0)
    assert predictor.bucket(a.shape) == predictor.bucket(b.shape) == (128, 160)
    together = predictor.predict([a, b])
    alone = predictor.predict([a]) + predictor.predict([b])
    for t, s, src in zip(together, alone, (a, b)):
        assert t.shape == src.shape + (2,)
        assert np.allclose(t, s, atol=1e-3)
