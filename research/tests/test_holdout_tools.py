"""research/split_holdout.py and research/photo_gain.py: the held-out halves the lab notebook's
rule chooses and checks on, and the per-photo gain against the calibrated one (moved from
tests/test_calibrate.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorize_cli.api import from_module
from colorize_cli.models import build
from colorize_cli.models.weights import load_model, save_weights
from colorize_cli.settings import ColorSettings
from colorize_cli.training.evaluate import load_truth


@pytest.fixture
def photos(tmp_path: Path) -> list:
    """Two small colour 'photos' (a sky gradient over a field, a red roof), saved as JPEG and read back."""
    paths = []
    for seed in range(2):
        rng = np.random.default_rng(seed)
        y, x = np.mgrid[0:120, 0:160].astype(np.float32)
        rgb = np.empty((120, 160, 3), np.float32)
        rgb[..., 0], rgb[..., 1], rgb[..., 2] = 90 + 0.5 * y, 140 + 0.3 * y, 235 - 0.4 * y  # sky
        rgb[60:, :, 0], rgb[60:, :, 1], rgb[60:, :, 2] = 70, 140 - 0.2 * x[60:], 50  # field
        rgb[40 + 10 * seed : 70, 50:100] = (190, 40, 30)  # roof
        rgb += rng.normal(0, 4, rgb.shape)
        path = tmp_path / f"photo{seed}.jpg"
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=95)
        paths.append(path)
    return load_truth(paths)


def test_split_holdout_mixes_every_source_into_both_halves(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    lines = [f"/data/train/{src}/{k:03d}.jpg" for src in ("aaa", "bbb") for k in range(20)]  # sorted, as train writes
    holdout = tmp_path / "holdout.txt"
    holdout.write_text("\n".join(lines) + "\n")

    def run(seed: int) -> tuple[list[str], list[str]]:
        a, b = tmp_path / f"a{seed}.txt", tmp_path / f"b{seed}.txt"
        done = subprocess.run([sys.executable, str(root / "research" / "split_holdout.py"), str(holdout), str(a), str(b), "--seed", str(seed)],
                              capture_output=True, text=True, check=True)
        assert done.stdout.startswith("20 photos to choose on")
        return a.read_text().splitlines(), b.read_text().splitlines()

    first, second = run(1)
    assert len(first) == len(second) == 20 and sorted(first + second) == lines
    for half in (first, second):
        assert {p.split("/")[3] for p in half} == {"aaa", "bbb"}  # not the sorted file's two halves
        assert 4 <= sum("/aaa/" in p for p in half) <= 16
    assert run(1) == (first, second) and run(2) != (first, second)  # seeded: reproducible, and the seed matters


def test_photo_gain_tool_scores_a_constant_gain_as_the_gain_buffer_does(tmp_path: Path, photos: list, monkeypatch) -> None:
    """research/photo_gain.py gives each photo its gain as the merge's saturation on the network's
    a*b* at gain 1; a constant candidate must colour as the calibrated gain buffer does through
    `colorize_gray`, or its comparison with the calibration means nothing."""
    import importlib.util

    from colorize_cli.io.read.grayscale import luminance8
    from colorize_cli.inference.predict import colorize_gray
    from colorize_cli.training.metrics import score

    spec = importlib.util.spec_from_file_location("photo_gain", Path(__file__).resolve().parents[2] / "research" / "photo_gain.py")
    tool = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "photo_gain", tool)  # its dataclass looks its module up there
    spec.loader.exec_module(tool)
    assert [tool.ramp(c, 1.0, 1.3, 8.0, 14.0) for c in (2.0, 8.0, 11.0, 14.0, 30.0)] == pytest.approx([1.0, 1.0, 1.15, 1.3, 1.3])

    torch.manual_seed(2)
    model = build("chromanet").eval()
    with torch.no_grad():
        model.mix.fill_(0.5)
        model.gain.fill_(1.3)
    weights = tmp_path / "calibrated.safetensors"
    save_weights(model, "chromanet", weights)
    listing = tmp_path / "photos.txt"
    listing.write_text("".join(f"{path}\n" for path, _ in photos))

    measured = tool.Photos(*tool.network(weights), listing)
    summary, _, per = measured.scores(lambda chroma: 1.3)
    shipped = from_module(*load_model(weights), device="cpu")
    direct = [score(colorize_gray(luminance8(t), shipped.predictor, ColorSettings(), shipped.render_size), t) for _, t in photos]
    assert [s.psnr for s in per] == pytest.approx([s.psnr for s in direct], abs=0.01)
    assert [s.colourfulness_pred for s in per] == pytest.approx([s.colourfulness_pred for s in direct], abs=0.05)
    assert all(s.colourfulness_pred > 0.5 for s in per)  # the network coloured them: the test compares colour, not gray
    assert measured.scores(lambda chroma: 1.0)[0]["colourfulness_pred"] < summary["colourfulness_pred"] / 1.2
