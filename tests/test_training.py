"""Training from the shipped model: --init, the weight average, simulated physical damage."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorize_cli.models.weights import load_model
from colorize_cli.training.data import CropSettings, marks, random_crop
from colorize_cli.training.loop import TrainConfig, train
from sample_photos import colour_photos


def test_marks_change_only_thin_parts_of_the_gray_and_nothing_at_p0() -> None:
    lum = np.full((64, 64), 128.0, np.float32)
    assert np.array_equal(marks(lum, np.random.default_rng(0), 0.0), lum)
    changed = [np.mean(marks(lum, np.random.default_rng(s), 1.0) != lum) for s in range(20)]
    assert all(c > 0 for c in changed)  # every kind at p=1 leaves a trace
    out = marks(lum, np.random.default_rng(1), 1.0)
    assert out.shape == lum.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 255


def test_damage_is_on_the_input_only_the_target_keeps_the_clean_colour() -> None:
    rgb = np.asarray(Image.fromarray(np.random.default_rng(5).integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((80, 80), Image.BICUBIC))
    clean = random_crop(rgb, np.random.default_rng(9), CropSettings(size=64, damage=0.0, marks=0.0))
    hurt = random_crop(rgb, np.random.default_rng(9), CropSettings(size=64, damage=0.0, marks=1.0))
    assert np.array_equal(clean[1], hurt[1]) and np.array_equal(clean[2], hurt[2])  # same Lab and sRGB target
    assert not np.array_equal(clean[0], hurt[0])  # the network's input L* carries the damage


def test_training_continues_from_weights_and_exports_the_average(tmp_path: Path, random_weights: Path) -> None:
    data = colour_photos(tmp_path / "photos")
    cfg = TrainConfig(data=(str(data),), out=str(tmp_path / "run"), cpu_minutes=0.04, batch=4,
                      crop=CropSettings(size=64, marks=0.3), holdout=2, threads=1, pretrained=False,
                      init=str(random_weights), ema=0.5, checkpoint_every_s=1e9)
    lines: list[str] = []
    exported = train(cfg, log=lines.append)
    assert any(line.startswith(f"initialised from {random_weights}") for line in lines)
    steps = int(lines[-1].split("done: ")[1].split(" steps")[0])
    assert steps >= 3, lines[-1]  # enough steps for the average to differ from the last one
    start, _ = load_model(random_weights)
    trained, info = load_model(exported)
    assert info.arch == "chromanet" and json.loads(json.dumps(info.meta))["train"]["ema"] == 0.5
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    raw = {k: v for k, v in state["model"].items()}
    name = "decoder.0.weight" if "decoder.0.weight" in raw else next(k for k in raw if k.endswith(".weight") and not k.startswith("encoder"))
    exported_w = trained.state_dict()[name]
    assert not torch.equal(exported_w, start.state_dict()[name])  # it trained
    # The file holds the average, not the last raw step (fp16 in the file, hence the tolerance).
    assert torch.allclose(exported_w, state["ema"][f"module.{name}"].float(), atol=1e-2)
    assert not torch.allclose(exported_w, raw[name].float(), atol=1e-6)


def test_learning_rate_warms_up_linearly_then_follows_the_cosine() -> None:
    from colorize_cli.training.loop import lr_scale

    assert lr_scale(0, 0.0, 0) == 1.0  # no warm-up: full rate at once
    assert lr_scale(0, 0.0, 100) == 0.01 and lr_scale(49, 0.0, 100) == 0.5
    assert lr_scale(99, 0.0, 100) == 1.0 and lr_scale(500, 0.0, 100) == 1.0
    assert abs(lr_scale(500, 0.5, 100) - 0.5) < 1e-12  # half the budget: half the rate
    assert lr_scale(10, 0.5, 100) < lr_scale(10, 0.0, 100)  # both factors apply together
    assert lr_scale(500, 1.0, 100) == 0.0


def test_a_wall_clock_budget_with_several_crop_workers_trains_and_stops_in_time(tmp_path: Path, random_weights: Path) -> None:
    """The GPU recipe's settings (wall-clock budget, several crop threads), here on the CPU."""

    data = colour_photos(tmp_path / "photos")
    cfg = TrainConfig(data=(str(data),), out=str(tmp_path / "run"), wall_minutes=0.05, cpu_minutes=1e-6, batch=4,
                      crop=CropSettings(size=64), holdout=2, threads=1, pretrained=False, init=str(random_weights),
                      checkpoint_every_s=1e9, workers=2)
    lines: list[str] = []
    t0 = time.perf_counter()
    train(cfg, log=lines.append)
    spent = time.perf_counter() - t0
    steps = int(lines[-1].split("done: ")[1].split(" steps")[0])
    assert steps >= 2, lines[-1]  # the tiny CPU budget was ignored: the wall-clock one ruled
    assert spent < 3 * 60 * 0.05 + 20, spent


def _first_batches(photos: list[np.ndarray], workers: int, n: int) -> list[np.ndarray]:
    from colorize_cli.training.data import BatchStream

    stream = BatchStream(photos, 2, CropSettings(size=32, damage=0.0), seed=5, workers=workers)
    try:
        return [stream.next()[0].numpy() for _ in range(n)]
    finally:
        stream.close()


def test_several_workers_each_cut_their_own_crops_in_a_reproducible_order() -> None:
    from colorize_cli.training.data import make_batch

    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (80, 96, 3), dtype=np.uint8) for _ in range(6)]
    batches = _first_batches(photos, 2, 9)
    assert all(b.shape == (2, 1, 32, 32) and b.dtype == np.float32 for b in batches)
    assert len({b.tobytes() for b in batches}) == 9  # no two workers repeat one another's crops
    again = _first_batches(photos, 2, 9)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # same seed and workers: same stream
    # One worker cuts exactly what one generator seeded with the run's seed cuts, in order.
    single = _first_batches(photos, 1, 3)
    gen = np.random.default_rng(5)
    expected = [make_batch(photos, gen, 2, CropSettings(size=32, damage=0.0))[0] for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(single, expected))
    assert np.array_equal(batches[0], expected[0])  # worker 0 of two draws from the seed too


def test_a_cpu_budget_counts_the_crop_workers_time() -> None:
    """The workers are other processes, so the training process's CPU clock no longer sees them;
    each batch brings its cutting time, and it is what cutting the same batches here costs."""

    from colorize_cli.training.data import BatchStream, make_batch

    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (160, 200, 3), dtype=np.uint8) for _ in range(4)]
    s = CropSettings(size=96, damage=0.3, marks=0.5)
    gen = np.random.default_rng(7)
    t0 = time.process_time()
    for _ in range(6):
        make_batch(photos, gen, 8, s)
    here = time.process_time() - t0
    stream = BatchStream(photos, 8, s, seed=7)
    try:
        for _ in range(6):
            stream.next()
    finally:
        stream.close()
    assert here / 3 < stream.cpu_seconds < here * 3, (stream.cpu_seconds, here)


def test_a_closed_stream_says_so() -> None:
    from colorize_cli.training.data import BatchStream

    photos = [np.zeros((40, 40, 3), np.uint8)]
    stream = BatchStream(photos, 1, CropSettings(size=16, damage=0.0), seed=0)
    stream.next()
    stream.close()
    with pytest.raises(RuntimeError, match="the batch stream is closed"):
        stream.next()


def test_training_lists_webp_photos(tmp_path: Path) -> None:
    """`colorize train`'s photo listing takes WebP files, whatever the suffix's case (the research
    script `research/pack_training_photos.py --format webp` packs photos so; its test is in
    research/tests)."""
    from colorize_cli.training.data import list_photos

    for name, fmt in (("a.webp", "WEBP"), ("b.WEBP", "WEBP"), ("c.jpg", "JPEG")):
        Image.new("RGB", (8, 8), (200, 100, 50)).save(tmp_path / name, format=fmt)
    (tmp_path / "notes.txt").write_text("not a photo")
    assert [p.name for p in list_photos([tmp_path])] == ["a.webp", "b.WEBP", "c.jpg"]


def _fit_constant(kind: str, targets: torch.Tensor) -> float:
    """The single value that minimises the regression loss over ``targets``, by gradient descent."""
    from colorize_cli.training.losses import regression_loss

    c = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([c], lr=0.01)
    for _ in range(1500):
        opt.zero_grad()
        regression_loss(c.expand_as(targets), targets, kind).backward()
        opt.step()
    return float(c.detach())


def test_the_squared_error_learns_the_mean_the_smooth_l1_the_median() -> None:
    # A skewed chroma: mostly near gray, sometimes vivid (values in units of 100 a*b*).
    targets = torch.tensor([0.0, 0.01, 0.02, 0.03, 0.04, 0.6, 0.8])
    assert abs(_fit_constant("mse", targets) - float(targets.mean())) < 0.005  # 0.214: what PSNR rewards
    assert abs(_fit_constant("smooth-l1", targets) - float(targets.median())) < 0.02  # 0.03: greyer


def test_an_unknown_regression_loss_is_refused_with_the_choices(tmp_path: Path) -> None:
    from colorize_cli.models import build
    from colorize_cli.training.losses import regression_loss
    from colorize_cli.training.objectives import make_objective

    with pytest.raises(ValueError, match="unknown regression loss 'l3'; choose one of smooth-l1, mse"):
        regression_loss(torch.zeros(2), torch.zeros(2), "l3")
    photos = [np.full((40, 40, 3), (200, 60, 30), np.uint8)]
    with pytest.raises(ValueError, match="unknown regression loss 'l3'"):
        make_objective("chromanet", build("chromanet"), photos, torch.device("cpu"), 0, reg_loss="l3")
    with pytest.raises(ValueError, match="--reg-loss mse applies to chromanet, not 'koala'"):
        make_objective("koala", build("koala"), photos, torch.device("cpu"), 0, reg_loss="mse")
    # A run with a misspelt loss fails at once and leaves no run folder behind.
    with pytest.raises(ValueError, match="unknown regression loss 'l3'"):
        TrainConfig(data=(str(tmp_path),), out=str(tmp_path / "run"), reg_loss="l3")
    assert not (tmp_path / "run").exists()


def test_training_with_the_squared_error_records_it_and_scores_it(tmp_path: Path, random_weights: Path) -> None:
    from colorize_cli.models import build
    from colorize_cli.training.data import make_batch
    from colorize_cli.training.losses import MSE_WEIGHT
    from colorize_cli.training.objectives import make_objective

    data = colour_photos(tmp_path / "photos")
    cfg = TrainConfig(data=(str(data),), out=str(tmp_path / "run"), cpu_minutes=0.02, batch=4,
                      crop=CropSettings(size=64), holdout=2, threads=1, pretrained=False,
                      init=str(random_weights), checkpoint_every_s=1e9, reg_loss="mse")
    lines: list[str] = []
    _, info = load_model(train(cfg, log=lines.append))
    assert info.meta["train"]["reg_loss"] == "mse"
    # The objective's regression part is the weighted squared error of the pooled a*b*.
    model = build("chromanet").eval()
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(data.iterdir())]
    _, lab, _ = make_batch(photos, np.random.default_rng(0), 2, CropSettings(size=64, marks=0.0))
    labt = torch.from_numpy(lab)
    with torch.no_grad():
        out = model(labt[:, :1])
        _, parts = make_objective("chromanet", model, photos, torch.device("cpu"), 0, reg_loss="mse")(out, labt, None)
    ab = torch.nn.functional.adaptive_avg_pool2d(labt[:, 1:], out[0].shape[-2:])
    expected = MSE_WEIGHT * float(((out[0] - ab) ** 2).mean()) / 100.0**2
    assert abs(parts["reg"] - expected) < 1e-4 * max(expected, 1.0)


def test_colorize_train_refuses_a_setting_that_cannot_work_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from colorize_cli.cli.app import app

    data = colour_photos(tmp_path / "photos")
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), "--reg-loss", "l2"])
    assert result.exit_code == 2, result.output
    assert "colorize train: unknown regression loss 'l2'; choose one of smooth-l1, mse" in result.output
    assert not (tmp_path / "run").exists()
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), "--arch", "unet"])
    assert result.exit_code == 2, result.output
    assert "colorize train: unknown architecture 'unet'; choose one of chromanet," in result.output
    assert "photos:" not in result.output and not (tmp_path / "run").exists()  # refused before loading
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), "--weight-decay", "1.5"])
    assert result.exit_code == 2, result.output
    assert "colorize train: weight decay must be in [0, 1), not 1.5" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()
    assert len(list(data.iterdir())) == 10  # the photos are untouched


def test_weight_decay_shrinks_kernels_by_lr_times_decay_and_leaves_biases_norms_and_the_waiting_encoder() -> None:
    from colorize_cli.models import build
    from colorize_cli.training.loop import make_optimizer

    model = build("chromanet")
    opt = make_optimizer(model, TrainConfig(data=(), out="", lr=1e-2, encoder_lr=1e-3, weight_decay=0.1))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only the decay can move a weight
    opt.step()
    after = dict(model.named_parameters())
    kernels = [n for n, p in after.items() if p.ndim > 1 and not n.startswith("encoder.")]
    flat = [n for n, p in after.items() if p.ndim == 1]
    assert kernels and flat and any(n.startswith("encoder.") for n in after)
    for n in kernels:
        torch.testing.assert_close(after[n].detach(), before[n] * (1 - 1e-2 * 0.1))
    for n in flat:  # biases and batch-norm scales keep their values
        assert torch.equal(after[n].detach(), before[n]), n
    for n in after:  # the encoder's learning rate is 0 until it is unfrozen, so it does not decay either
        if n.startswith("encoder."):
            assert torch.equal(after[n].detach(), before[n]), n


def test_without_weight_decay_the_optimizer_keeps_the_groups_earlier_checkpoints_hold() -> None:
    from colorize_cli.models import build
    from colorize_cli.training.loop import _param_groups, make_optimizer

    model = build("chromanet")
    cfg = TrainConfig(data=(), out="")
    plain = make_optimizer(model, cfg)
    assert [len(g["params"]) for g in plain.param_groups] == [len(g["params"]) for g in _param_groups(model, cfg)]
    assert all(g["weight_decay"] == 0.0 for g in plain.param_groups)
    decayed = make_optimizer(model, TrainConfig(data=(), out="", weight_decay=0.05))
    assert [g["weight_decay"] for g in decayed.param_groups] == [0.05, 0.0, 0.05, 0.0]
    assert sum(len(g["params"]) for g in decayed.param_groups) == sum(len(g["params"]) for g in plain.param_groups)


@pytest.mark.parametrize("bf16", [False, True])
def test_bf16_runs_the_training_forward_pass_in_bfloat16_and_validation_in_float32(tmp_path: Path, random_weights: Path, bf16: bool) -> None:
    data = colour_photos(tmp_path / "photos")
    cfg = TrainConfig(data=(str(data),), out=str(tmp_path / "run"), cpu_minutes=0.02, batch=4,
                      crop=CropSettings(size=64), holdout=2, threads=1, pretrained=False,
                      init=str(random_weights), checkpoint_every_s=1e9, bf16=bf16)
    seen: list[tuple[bool, torch.dtype]] = []  # (training mode, dtype) of every convolution's output

    def record(module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
        if isinstance(module, torch.nn.Conv2d):
            seen.append((module.training, output.dtype))

    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        lines: list[str] = []
        trained, info = load_model(train(cfg, log=lines.append))
    finally:
        hook.remove()
    assert info.meta["train"]["bf16"] is bf16
    assert {dtype for training, dtype in seen if training} == ({torch.bfloat16} if bf16 else {torch.float32})
    assert {dtype for training, dtype in seen if not training} == {torch.float32}  # validation is comparable across runs
    final = float(lines[-1].split("final validation loss ")[1].split(";")[0])
    assert np.isfinite(final) and final > 0
    start, _ = load_model(random_weights)
    assert not torch.equal(trained.state_dict()["classify.weight"], start.state_dict()["classify.weight"])  # it trained


def test_a_waiting_encoder_takes_no_gradient_until_its_turn() -> None:
    """encoder_waits: while the pretrained encoder's learning rate is 0 it takes no gradient, so the
    backward pass skips it; once it trains, it takes gradients again, and the decoder always does."""
    from colorize_cli.models import build
    from colorize_cli.training.loop import encoder_waits, make_optimizer

    model = build("chromanet-lite2").train()
    opt = make_optimizer(model, TrainConfig(data=(), out="", arch="chromanet-lite2", weight_decay=0.05))
    x = torch.linspace(0, 100, 2 * 64 * 64).view(2, 1, 64, 64)
    for waiting in (True, False, True):
        encoder_waits(opt, waiting)
        opt.zero_grad(set_to_none=True)
        reg, logits = model(x)
        (reg.mean() + logits.mean()).backward()
        encoder = [p.grad for p in model.encoder.parameters()]
        assert all(g is None for g in encoder) if waiting else all(g is not None for g in encoder)
        assert model.regress.weight.grad is not None and model.up4.conv[0].weight.grad is not None
