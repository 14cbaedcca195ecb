"""--tta: the mirror image's a*b*, mirrored back, averaged with the image's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from colorize_cli.inference.predict import Predictor, predict_many, predict_working_ab
from colorize_cli.settings import ColorSettings, RunSettings


class LeftRight(nn.Module):
    """Not mirror-symmetric on purpose: a* is a ramp from the left edge (0) to the right (1),
    b* is the input itself. Mirroring the ramp and averaging must flatten a* to 0.5 everywhere
    and leave b* (which mirrors with the input) unchanged."""

    stride = 1
    output_scale = 1
    default_render_size = 64

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        n, _, h, w = lightness.shape
        ramp = torch.linspace(0, 1, w).view(1, 1, 1, w).expand(n, 1, h, w)
        return torch.cat([ramp, lightness], dim=1)


def test_flip_average_is_the_mean_of_the_image_and_its_mirror_tile_by_tile() -> None:
    rng = np.random.default_rng(0)
    tiles = [rng.uniform(0, 100, (24, 40)).astype(np.float32) for _ in range(3)]  # one batch of three
    predictor = Predictor(LeftRight(), torch.device("cpu"), None)
    plain = predict_many(predictor, tiles)
    both = predict_many(predictor, tiles, flip=True)
    for t, p, b in zip(tiles, plain, both):
        assert p[0, 0, 0] == 0.0 and p[0, -1, 0] == 1.0  # without the option: the ramp
        assert np.allclose(b[..., 0], 0.5, atol=1e-6)  # ramp + mirrored ramp, halved
        assert np.allclose(b[..., 1], t, atol=1e-4)  # each tile kept its own content, not a neighbour's


def test_flip_average_through_tiling_leaves_a_symmetric_network_unchanged() -> None:
    """A mirror-symmetric network (a 3x3 blur, symmetric kernel) gives the same a*b* either way,
    through the tiled path too: the flip is undone exactly."""
    blur = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        blur.weight.copy_(torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]).expand(2, 1, 3, 3) / 16)

    class Sym(nn.Module):
        stride, output_scale, default_render_size = 1, 1, 64

        def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
            return blur(lightness)

    predictor = Predictor(Sym(), torch.device("cpu"), None)
    lightness = np.random.default_rng(1).uniform(0, 100, (150, 230)).astype(np.float32)
    color = ColorSettings(tile_size=128, tile_overlap=16)
    plain = predict_working_ab(predictor, lightness, color, batch_size=4)
    flipped = predict_working_ab(predictor, lightness, ColorSettings(tile_size=128, tile_overlap=16, tta=True), batch_size=4)
    assert np.allclose(plain, flipped, atol=1e-4)
    unsym = predict_working_ab(Predictor(LeftRight(), torch.device("cpu"), None), lightness, color, batch_size=4)
    assert not np.allclose(unsym[..., 0], 0.5, atol=0.1)  # the check above could have failed


def test_tta_is_part_of_the_settings_key_only_when_on(tmp_path: Path) -> None:
    """Files done before the option existed (tta off) keep their key and are not redone; turning
    it on redoes them."""
    off = RunSettings(input_root=tmp_path, out_root=tmp_path / "o")
    on = RunSettings(input_root=tmp_path, out_root=tmp_path / "o", color=ColorSettings(tta=True))
    assert "tta" not in off.output_affecting()["color"]
    assert on.output_affecting()["color"]["tta"] is True


def test_colorize_dir_tta_writes_a_different_colouring_and_records_it(tmp_path: Path, random_weights: Path) -> None:
    from typer.testing import CliRunner

    from colorize_cli.cli.app import app

    scans = tmp_path / "scans"
    scans.mkdir()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).resize((120, 90), Image.BICUBIC).save(scans / "a.png")
    runner = CliRunner()
    res = [runner.invoke(app, ["dir", str(scans), "--out", str(tmp_path / out), "--weights", str(random_weights), "--device", "cpu", "--quiet", *extra])
           for out, extra in (("plain", []), ("tta", ["--tta"]))]
    assert [r.exit_code for r in res] == [0, 0], [r.output for r in res]
    plain = np.asarray(Image.open(tmp_path / "plain" / "a.png"), np.int16)
    tta = np.asarray(Image.open(tmp_path / "tta" / "a.png"), np.int16)
    assert plain.shape == tta.shape == (90, 120, 3)
    assert np.abs(plain - tta).max() > 0  # a random network is not mirror-symmetric
    runs = [json.loads(line) for line in (tmp_path / "tta" / "manifest.jsonl").read_text().splitlines()]
    assert runs[0]["settings"]["color"]["tta"] is True  # the manifest says how the file was made
