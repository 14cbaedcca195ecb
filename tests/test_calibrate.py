"""`colorize calibrate` as a library call: the decoding is chosen on the real pipeline (Predictor),
written into the weights' buffers and metadata, and what it scored is what a run then gets."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorize_cli.api import from_module
from colorize_cli.models import build
from colorize_cli.models.weights import load_model, save_weights
from colorize_cli.settings import ColorSettings
from colorize_cli.training.calibrate import GAINS, MIXES, TEMPERATURES, calibrate, calibrate_weights
from colorize_cli.training.evaluate import evaluate, load_truth



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


def test_calibrate_weights_chooses_by_the_rule_and_writes_what_it_scored(tmp_path: Path, photos: list) -> None:
    torch.manual_seed(0)
    start = tmp_path / "start.safetensors"
    save_weights(build("chromanet"), "chromanet", start, meta={"train": {"steps": 1}})
    out = tmp_path / "calibrated.safetensors"

    done = calibrate_weights(start, photos, out, render_size=64, min_ratio=0.1, source="two photos")

    assert len(done.table) == (1 + (len(MIXES) - 1) * len(TEMPERATURES)) * len(GAINS)
    vivid = [c for c in done.table if c.colourfulness_ratio >= 0.1]
    expected = max(vivid, key=lambda c: c.psnr) if vivid else max(done.table, key=lambda c: c.colourfulness_ratio)
    assert done.chosen == expected

    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert done.sha256 == digest and out.with_name(out.name + ".sha256").read_text().split()[0] == digest
    model, info = load_model(out)
    assert float(model.mix) == pytest.approx(done.chosen.mix) and float(model.temperature) == pytest.approx(done.chosen.temperature, rel=1e-3)
    assert float(model.gain) == pytest.approx(done.chosen.gain, rel=1e-3)
    cal = info.meta["calibration"]
    assert (cal["mix"], cal["photos"], cal["render_size"], cal["min_ratio"]) == (done.chosen.mix, "two photos", 64, 0.1)
    assert info.meta["train"] == {"steps": 1}  # the training record is kept

    # The calibrated file, run the ordinary way (no cached network outputs), scores what calibration said.
    colorizer = from_module(model, info, device="cpu")
    scores, _, _ = evaluate(photos, colorizer.predictor, ColorSettings(render_size=64), 64)
    assert scores["psnr"] == pytest.approx(done.chosen.psnr, abs=0.02)
    assert scores["colourfulness_ratio"] == pytest.approx(done.chosen.colourfulness_ratio, abs=0.01)


def test_calibrate_refuses_a_model_without_a_decoding(tmp_path: Path, photos: list) -> None:
    weights = tmp_path / "koala.safetensors"
    save_weights(build("koala"), "koala", weights)
    with pytest.raises(ValueError, match="'koala' model has no decoding to calibrate"):
        calibrate_weights(weights, photos, tmp_path / "out.safetensors", render_size=64)
    assert not (tmp_path / "out.safetensors").exists()


def test_the_network_runs_once_per_photo_however_many_decodings(photos: list) -> None:
    torch.manual_seed(1)
    model = build("chromanet").eval()
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    best, table = calibrate(model, photos, 64)
    assert len(table) == 13 * len(GAINS) and best in table
    assert len(calls) == len(photos)


def test_the_gain_scales_the_decoded_chroma_and_old_files_load_with_gain_1(tmp_path: Path, random_weights: Path) -> None:
    from safetensors.torch import load_file, save_file

    model, _ = load_model(random_weights)
    x = torch.linspace(0, 100, 64 * 64).view(1, 1, 64, 64)
    with torch.no_grad():
        base = model.predict_ab(x)
        model.gain.fill_(1.3)
        assert torch.allclose(model.predict_ab(x), base * 1.3, atol=1e-4)
    # A file written before the gain existed (as chromanet-v1 was) loads and decodes as before.
    state = load_file(str(random_weights))
    assert "gain" in state
    del state["gain"]
    old = tmp_path / "old.safetensors"
    from safetensors import safe_open

    with safe_open(str(random_weights), framework="pt") as f:
        header = f.metadata()
    save_file(state, str(old), metadata=header)
    old.with_name(old.name + ".sha256").write_text(hashlib.sha256(old.read_bytes()).hexdigest() + "  old.safetensors\n")
    loaded, _ = load_model(old)
    assert float(loaded.gain) == 1.0
    with torch.no_grad():
        assert torch.allclose(loaded.predict_ab(x), base, atol=1e-4)


def test_colourful_only_keeps_the_photos_at_least_that_colourful(tmp_path: Path, photos: list) -> None:
    from colorize_cli.training.evaluate import colourful_flags, colourful_only
    from colorize_cli.training.metrics import colourfulness

    gray = np.repeat(photos[0][1].mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    mixed = [*photos, (tmp_path / "gray.png", gray)]
    m = [colourfulness(t) for _, t in mixed]
    assert m[2] < 1 < min(m[:2])  # the test's premise: two colour photos and a gray one
    assert [p.name for p, _ in colourful_only(mixed, 1.0)] == ["photo0.jpg", "photo1.jpg"]
    assert [p.name for p, _ in colourful_only(mixed, (m[0] + m[1]) / 2)] == [["photo0.jpg", "photo1.jpg"][int(np.argmax(m[:2]))]]
    assert colourful_only(mixed, 0) == mixed
    assert colourful_flags(mixed, 1.0) == [True, True, False]  # the same choice, photo by photo
    assert colourful_flags(mixed, 0) == [True, True, True]


def test_eval_and_calibrate_refuse_a_floor_no_photo_reaches(tmp_path: Path, photos: list, random_weights: Path) -> None:
    from typer.testing import CliRunner

    from colorize_cli.cli.app import app

    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{p}\n" for p, _ in photos))
    runner = CliRunner()
    ev = runner.invoke(app, ["eval", str(listing), "--weights", str(random_weights), "--min-colourfulness", "500"])
    cal = runner.invoke(app, ["calibrate", str(random_weights), str(listing), "--out", str(tmp_path / "c.safetensors"), "--min-colourfulness", "500"])
    for res, cmd in ((ev, "eval"), (cal, "calibrate")):
        assert res.exit_code == 2 and f"colorize {cmd}: no photo in {listing} has colourfulness 500" in res.output
    assert not (tmp_path / "c.safetensors").exists()
    # A floor on the colourful photos when none of them is colourful: a usage error, nothing written.
    muted = tmp_path / "muted.txt"
    for k, (_, truth) in enumerate(photos):
        gray = truth.mean(axis=2, keepdims=True)
        Image.fromarray(np.clip(gray + 0.2 * (truth - gray), 0, 255).astype(np.uint8)).save(tmp_path / f"muted{k}.png")
    muted.write_text("".join(f"{tmp_path / f'muted{k}.png'}\n" for k in range(len(photos))))
    floor = runner.invoke(app, ["calibrate", str(random_weights), str(muted), "--out", str(tmp_path / "c.safetensors"), "--min-vivid-ratio", "0.5"])
    assert floor.exit_code == 2 and "colorize calibrate: no photo has colourfulness 30 or more" in floor.output, floor.output
    assert not (tmp_path / "c.safetensors").exists()
    ok = runner.invoke(app, ["eval", str(listing), "--weights", str(random_weights), "--min-colourfulness", "1", "--json", "--tta"])
    assert ok.exit_code == 0, ok.output
    import json

    res = json.loads(ok.output)
    assert res["photos"] == 2 and [m["tta"] for m in res["models"]] == [False, True]
    # The --tta row is paired with the first row, photo by photo.
    against = res["models"][1]["against"]
    assert against["model"] == res["models"][0]["model"] and against["psnr"]["n"] == 2
    mean = res["models"][1]["metrics"]["psnr"] - res["models"][0]["metrics"]["psnr"]
    assert against["psnr"]["mean"] == pytest.approx(mean) and against["psnr"]["low"] <= against["psnr"]["mean"] <= against["psnr"]["high"]
    assert "against" not in res["models"][0]
    text = runner.invoke(app, ["eval", str(listing), "--weights", str(random_weights), "--tta"])
    assert text.exit_code == 0 and f"{res['models'][1]['model']} against {res['models'][0]['model']}, photo by photo: PSNR " in text.output


def test_calibrating_with_tta_scores_what_colorize_dir_tta_gives(tmp_path: Path, photos: list) -> None:
    """Calibrated with --tta, the recorded scores are those of the flip-averaged pipeline, and
    the network still runs once per photo (the mirror image rides in the same batch)."""
    from colorize_cli.models.paths import DEFAULT_WEIGHTS

    start = DEFAULT_WEIGHTS  # a trained network: a random one is too nearly colourless for a flip to show
    done = calibrate_weights(start, photos, tmp_path / "c.safetensors", render_size=64, min_ratio=0.0, tta=True)
    assert done.meta["calibration"]["tta"] is True
    model, info = load_model(tmp_path / "c.safetensors")
    colorizer = from_module(model, info, device="cpu")
    flip, _, _ = evaluate(photos, colorizer.predictor, ColorSettings(render_size=64, tta=True), 64)
    plain, _, _ = evaluate(photos, colorizer.predictor, ColorSettings(render_size=64), 64)
    assert flip["psnr"] == pytest.approx(done.chosen.psnr, abs=0.02)  # fp16 in the file, hence the tolerance
    assert abs(flip["psnr"] - done.chosen.psnr) < abs(plain["psnr"] - done.chosen.psnr) / 5, (flip, plain, done.chosen)


def test_the_colourful_floor_holds_the_colourful_photos_to_their_own_ratio(tmp_path: Path, photos: list) -> None:
    from colorize_cli.training.metrics import colourfulness, summarise

    # A third, muted photo: the colourful floor must judge the two colourful ones alone.
    path, truth = photos[0]
    gray = truth.mean(axis=2, keepdims=True)
    muted = np.clip(gray + 0.25 * (truth - gray), 0, 255).astype(np.uint8)
    mixed = [*photos, (tmp_path / "muted.png", muted)]
    levels = [colourfulness(t) for _, t in mixed]
    vivid_at = (levels[2] + min(levels[:2])) / 2
    assert levels[2] < vivid_at < min(levels[:2])  # the test's premise

    torch.manual_seed(2)
    model = build("chromanet").eval()
    with torch.no_grad():
        model.classify.bias.add_(torch.linspace(-3, 3, model.classify.bias.numel()))  # some colour to decode
    _, table = calibrate(model, mixed, 64, min_ratio=0.0, vivid_at=vivid_at)
    top = max(table, key=lambda c: c.psnr)
    floor = top.vivid_ratio + 1e-6  # just above the best-PSNR decoding's: it must be passed over
    best, table = calibrate(model, mixed, 64, min_ratio=0.0, min_vivid_ratio=floor, vivid_at=vivid_at)
    allowed = [c for c in table if c.vivid_ratio >= floor]
    assert allowed and best == max(allowed, key=lambda c: c.psnr) and best != top
    assert best.vivid_ratio != pytest.approx(best.colourfulness_ratio)  # the muted photo counts in one, not the other

    # Its colourful ratio is what the chosen decoding, run the ordinary way, gives on the colourful photos.
    with torch.no_grad():
        model.mix.fill_(best.mix)
        model.temperature.fill_(best.temperature)
        model.gain.fill_(best.gain)
    from colorize_cli.models.weights import ModelInfo

    colorizer = from_module(model, ModelInfo(name="t", arch="chromanet", sha256="", meta={}), device="cpu")
    _, _, items = evaluate(mixed, colorizer.predictor, ColorSettings(render_size=64), 64)
    vivid = summarise([i.model for i in items if colourfulness(i.truth) >= vivid_at])
    assert vivid["colourfulness_ratio"] == pytest.approx(best.vivid_ratio, abs=0.01)


def test_eval_says_why_a_row_is_not_paired_and_still_scores_it(tmp_path: Path, photos: list, random_weights: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    import colorize_cli.training.metrics as metrics
    from colorize_cli.cli.app import app

    def refuse(a, b, **kw):
        raise ValueError("a per-photo score is not finite (an exact reproduction has infinite PSNR)")

    monkeypatch.setattr(metrics, "paired_difference", refuse)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{p}\n" for p, _ in photos))
    res = CliRunner().invoke(app, ["eval", str(listing), "--weights", str(random_weights), "--tta"])
    assert res.exit_code == 0, res.output
    assert "+tta against" in res.output and ": not paired (a per-photo score is not finite" in res.output
    assert res.output.count("│") > 10  # the table is still printed
