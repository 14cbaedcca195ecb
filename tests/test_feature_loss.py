"""The feature (perceptual) loss `colorize train --feature-loss` adds: its colour maths, what it
measures, that it trains nothing of its own, and that validation stays the plain objective."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from colorize_cli.color import lab_to_linear_rgb, linear_to_srgb, rgb_to_lab
from colorize_cli.models.labtorch import lab_to_rgb, rgb_to_lab as rgb_to_lab_t
from colorize_cli.models.weights import load_model
from colorize_cli.training.data import CropSettings
from colorize_cli.training.feature_loss import FeatureLoss, predicted_rgb, true_rgb
from colorize_cli.training.loop import TrainConfig, train
from sample_photos import colour_photos


def _photo(seed: int = 4, size: int = 96) -> np.ndarray:
    """A smooth, colourful photo-like image (N=1, 3, H, W) in [0, 1]."""
    small = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), np.float32) / 255.0
    return img.transpose(2, 0, 1)[None].copy()


def test_lab_to_rgb_in_torch_inverts_rgb_to_lab_and_clips_like_the_numpy_reference() -> None:
    rgb = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    back = lab_to_rgb(rgb_to_lab_t(torch.from_numpy(rgb))).numpy()
    np.testing.assert_allclose(back, rgb, atol=1e-4, rtol=0)
    # Any Lab, in gamut or not: the numpy conversion, clipped in linear light, then encoded.
    lab = np.random.default_rng(1).uniform([0, -110, -110], [100, 110, 110], (4, 8, 8, 3)).astype(np.float32)
    expected = linear_to_srgb(np.clip(lab_to_linear_rgb(lab), 0.0, 1.0))
    got = lab_to_rgb(torch.from_numpy(lab).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert ((lab_to_linear_rgb(lab) < 0) | (lab_to_linear_rgb(lab) > 1)).any()  # some were out of gamut


def test_the_feature_loss_is_zero_on_the_truth_and_grows_as_the_colours_fade() -> None:
    loss = FeatureLoss()
    rgb = torch.from_numpy(_photo())
    assert float(loss(rgb, rgb)) == 0.0
    lab = torch.from_numpy(rgb_to_lab(rgb[0].permute(1, 2, 0).numpy())).permute(2, 0, 1)[None]
    ab = F.avg_pool2d(lab[:, 1:], 4)  # what a network's quarter-size a*b* at best could be
    target = true_rgb(rgb)
    full, half, none = (float(loss(predicted_rgb(lab, ab * k), target)) for k in (1.0, 0.5, 0.0))
    assert 0.0 < full < half < none, (full, half, none)
    # The same chroma, of the wrong hue, is also far: it measures colour, not only its amount.
    assert float(loss(predicted_rgb(lab, -ab), target)) > half


def test_the_feature_network_trains_nothing_stays_in_eval_and_passes_gradients_to_the_prediction() -> None:
    loss = FeatureLoss()
    loss.train()
    assert not loss.training and not any(m.training for m in loss.modules())  # ImageNet statistics kept
    assert not any(p.requires_grad for p in loss.parameters())
    rgb = torch.from_numpy(_photo())
    lab = rgb_to_lab_t(rgb)
    ab = (F.avg_pool2d(lab[:, 1:], 4) * 0.5).requires_grad_(True)
    value = loss(predicted_rgb(lab, ab), true_rgb(rgb))
    value.backward()
    assert torch.isfinite(ab.grad).all() and float(ab.grad.abs().sum()) > 0
    assert all(p.grad is None for p in loss.parameters())


def _final_val(run: Path) -> float:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()][-1]["final_val"]


def test_training_with_the_feature_loss_runs_and_validates_on_the_plain_objective(tmp_path: Path, random_weights: Path) -> None:
    data = colour_photos(tmp_path / "photos", n=8)
    common = dict(data=(str(data),), batch=4, crop=CropSettings(size=64), holdout=2, threads=1, pretrained=False,
                  init=str(random_weights), checkpoint_every_s=1e9)
    lines: list[str] = []
    _, info = load_model(train(TrainConfig(out=str(tmp_path / "run"), cpu_minutes=0.03, feature_loss=0.05, **common),
                               log=lines.append))
    assert info.meta["train"]["feature_loss"] == 0.05
    assert int(lines[-1].split("done: ")[1].split(" steps")[0]) >= 1
    # No step in either run: the two validations see the same network, so they agree only if
    # the feature term stays out of what is validated.
    plain = train(TrainConfig(out=str(tmp_path / "plain"), wall_minutes=1e-9, **common), log=lambda _: None)
    feat = train(TrainConfig(out=str(tmp_path / "feat"), wall_minutes=1e-9, feature_loss=1.0, **common), log=lambda _: None)
    assert plain.is_file() and feat.is_file()
    assert _final_val(tmp_path / "plain") == _final_val(tmp_path / "feat") > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--feature-loss", "-0.1"], "colorize train: --feature-loss is a weight, at least 0, not -0.1"),
    (["--feature-loss", "0.1", "--arch", "koala"], "colorize train: --feature-loss applies to chromanet's a*b* regression, not 'koala'"),
])
def test_colorize_train_refuses_a_feature_loss_that_cannot_work(tmp_path: Path, args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from colorize_cli.cli.app import app

    data = colour_photos(tmp_path / "photos", n=8)
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists() and len(list(data.iterdir())) == 8  # nothing written, photos untouched
