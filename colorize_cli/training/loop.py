"""The training loop: a CPU-time budget, checkpoints, exact resume.

The budget is CPU time of this process (all its threads), not wall time, so runs of different
architectures get the same compute however busy the shared machine is, and a run killed and
resumed ends where an uninterrupted one would. A GPU run, where the CPU only feeds the device,
is budgeted in wall time instead (``wall_minutes``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from colorize_cli.models import arch_spec, build
from colorize_cli.models.imagenet import load_imagenet
from colorize_cli.models.weights import load_model as load_weights, save_weights
from colorize_cli.training import objectives
from colorize_cli.training.data import BatchStream, CropSettings, list_photos, load_photos, make_batch, write_photo_list
from colorize_cli.training.feature_loss import FeatureLoss, predicted_rgb, true_rgb
from colorize_cli.training.losses import check_reg_loss


@dataclass(frozen=True)
class TrainConfig:
    data: tuple[str, ...]
    out: str  # run folder: checkpoint, log, exported weights
    arch: str = "chromanet"
    cpu_minutes: float = 60.0  # budget of process CPU time
    batch: int = 24
    lr: float = 1e-3
    encoder_lr: float = 1e-4  # pretrained encoder, once unfrozen
    freeze_fraction: float = 0.15  # first part of the budget with the pretrained encoder frozen
    crop: CropSettings = field(default_factory=CropSettings)
    holdout: int = 300  # photos kept out of training, for validation and decoding choices
    seed: int = 0
    threads: int = 0  # torch threads; 0: all cores
    device: str = "cpu"
    pretrained: bool = True
    checkpoint_every_s: float = 180.0
    init: str = ""  # weights file to start from (e.g. the shipped model); a fresh optimizer
    ema: float = 0.0  # decay of an exponential moving average of the weights; 0: none
    warmup: int = 0  # steps of linear learning-rate warm-up (a fresh Adam on trained weights needs it)
    wall_minutes: float = 0.0  # if set, the budget is wall time instead (a GPU run, whose CPU time says little)
    workers: int = 1  # processes cutting crops; more feed a GPU, and the batch order is still reproducible
    reg_loss: str = "smooth-l1"  # ChromaNet's regression term: smooth-l1 (v1) or mse
    weight_decay: float = 0.0  # AdamW's decoupled decay of kernels (not biases, not norms); 0: plain Adam
    feature_loss: float = 0.0  # weight of the feature loss (training.feature_loss) added to the objective; 0: none
    bf16: bool = False  # the training forward pass autocast to bfloat16 (weights, optimizer and objective stay float32)

    def __post_init__(self) -> None:
        spec = arch_spec(self.arch)  # a misspelt architecture or loss fails before minutes of loading photos
        if not spec.trainable:
            raise ValueError(f"{self.arch!r} is not trained as one network: tools/pair_weights.py assembles it from trained ones")
        check_reg_loss(self.reg_loss)
        if not 0.0 <= self.weight_decay < 1.0:
            raise ValueError(f"weight decay must be in [0, 1), not {self.weight_decay}")
        if self.feature_loss < 0.0:
            raise ValueError(f"--feature-loss is a weight, at least 0, not {self.feature_loss}")
        if self.feature_loss and spec.loss != "chromanet":
            raise ValueError(f"--feature-loss applies to chromanet's a*b* regression, not {self.arch!r}")


def lr_scale(step: int, frac: float, warmup: int) -> float:
    """Multiplier of the base learning rate: a linear warm-up over `warmup` steps, then cosine decay
    over the CPU budget (`frac` of it spent). Without the warm-up, Adam's first steps on an already
    trained network (empty moment estimates) undo more than minutes of training recover."""
    ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    return ramp * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))


def _float32(outputs: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """A network's outputs in float32, so the objective is computed at full precision after a
    bfloat16 forward pass (a no-op without one)."""
    if isinstance(outputs, tuple):
        return tuple(o.float() for o in outputs)
    return outputs.float()


def split_photos(paths: list[Path], holdout: int, seed: int) -> tuple[list[Path], list[Path]]:
    order = np.random.default_rng(seed).permutation(len(paths))
    held = sorted(paths[i] for i in order[:holdout])
    return sorted(paths[i] for i in order[holdout:]), held


def _param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    spec = arch_spec(cfg.arch)
    pretrained = [p for n, p in model.named_parameters() if spec.pretrained and n.startswith(spec.pretrained + ".")]
    ids = {id(p) for p in pretrained}
    rest = [p for p in model.parameters() if id(p) not in ids]
    # Fixed for the whole run: it takes no gradient, so no backward pass runs through it.
    fixed = spec.pretrained_training == "frozen" or (spec.pretrained_training == "finetune" and cfg.freeze_fraction >= 1.0)
    if fixed:
        for p in pretrained:
            p.requires_grad_(False)
        return [{"params": rest, "lr": cfg.lr, "base": cfg.lr}]
    if spec.pretrained_training == "finetune":
        return [
            {"params": rest, "lr": cfg.lr, "base": cfg.lr, "pretrained": False},
            {"params": pretrained, "lr": 0.0, "base": cfg.encoder_lr, "pretrained": True},
        ]
    return [{"params": list(model.parameters()), "lr": cfg.lr, "base": cfg.lr}]


def _with_decay(groups: list[dict], weight_decay: float) -> list[dict]:
    """Each group split in two: kernels decay, biases and norm scales (1-D) do not, since shrinking
    them shifts every activation instead of limiting the fit. Without decay the groups stay as they
    are, so checkpoints of earlier runs still resume."""
    if not weight_decay:
        return groups
    split = []
    for g in groups:
        params = g["params"]
        split.append({**g, "params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay})
        split.append({**g, "params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0})
    return split


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the registry's groups; with no weight decay it takes the same steps as Adam."""
    return torch.optim.AdamW(_with_decay(_param_groups(model, cfg), cfg.weight_decay), weight_decay=0.0)


def encoder_waits(opt: torch.optim.Optimizer, waiting: bool) -> None:
    """While the pretrained encoder waits (its learning rate 0, the first `freeze_fraction` of the
    budget), it takes no gradient either, so no backward pass runs through it for nothing."""
    for g in opt.param_groups:
        if g.get("pretrained", False):
            for p in g["params"]:
                p.requires_grad_(not waiting)


def _freeze_pretrained_bn(model: nn.Module) -> None:
    """Pretrained encoders keep their ImageNet batch-norm statistics (small batches would spoil them)."""
    for name, m in model.named_modules():
        if name.startswith(("encoder", "classifier")) and isinstance(m, nn.BatchNorm2d):
            m.eval()


def make_objective(cfg: TrainConfig, model: nn.Module, photos: list[np.ndarray], device: torch.device) -> Callable:
    return objectives.make_objective(cfg.arch, model, photos, device, cfg.seed, reg_loss=cfg.reg_loss)


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _rng_state_of(gen: np.random.Generator) -> str:
    return json.dumps(gen.bit_generator.state)


def fresh_model(arch: str, pretrained: bool = True) -> nn.Module:
    """What a run without --init starts from: fresh layers drawn from torch's generator (seed it
    first), and the ImageNet encoder where the architecture has one and ``pretrained`` is set."""
    model = build(arch)
    if pretrained and arch_spec(arch).pretrained:
        load_imagenet(getattr(model, arch_spec(arch).pretrained))
    return model


def train(cfg: TrainConfig, resume: bool = False, log: Callable[[str], None] = print) -> Path:
    """Train until the CPU budget is spent; returns the path of the exported weights."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)

    paths = list_photos([Path(d) for d in cfg.data])
    train_paths, held_paths = split_photos(paths, cfg.holdout, cfg.seed)
    write_photo_list(out / "holdout.txt", held_paths)
    t0 = time.time()
    photos, dropped = load_photos(train_paths)
    held, _ = load_photos(held_paths)
    log(f"photos: {len(photos)} for training ({dropped} gray/colourless/small dropped), {len(held)} held out; loaded in {time.time() - t0:.0f}s")

    model = fresh_model(cfg.arch, pretrained=cfg.pretrained and not cfg.init)
    if cfg.init:
        start, info = load_weights(Path(cfg.init))
        if info.arch != cfg.arch:
            raise ValueError(f"--init {cfg.init} holds a {info.arch!r} model, not {cfg.arch!r}")
        model.load_state_dict(start.state_dict())
        log(f"initialised from {cfg.init} (sha256 {info.sha256[:12]})")
    model.to(device).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg)
    objective = make_objective(cfg, model, photos, device)
    # Added to the training loss only: validation keeps the plain objective, comparable across runs.
    features = FeatureLoss().to(device) if cfg.feature_loss else None
    # The averaged copy is what gets validated and exported: late-training noise averages out.
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None

    ckpt_path = out / "checkpoint.pt"
    step, cpu_used = 0, 0.0
    stream_seed = cfg.seed + 2
    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        step, cpu_used = state["step"], state["cpu_used"]
        stream_seed = cfg.seed + 2 + step  # a fresh, still deterministic crop stream
        torch.set_rng_state(state["torch_rng"])
        log(f"resumed at step {step}, {cpu_used / 60:.1f} CPU-min used")

    val_rng = np.random.default_rng(cfg.seed + 3)
    val_batches = [make_batch(held, val_rng, 32, CropSettings(size=cfg.crop.size, damage=0.0)) for _ in range(4)]
    stream = BatchStream(photos, cfg.batch, cfg.crop, stream_seed, workers=cfg.workers, pin_memory=device.type == "cuda")
    # A CPU budget counts the crop workers' time too, as it did when they were threads.
    clock = time.perf_counter if cfg.wall_minutes else (lambda: time.process_time() + stream.cpu_seconds)
    budget = (cfg.wall_minutes or cfg.cpu_minutes) * 60.0
    cpu_start = clock() - cpu_used
    last_ckpt = last_log = time.time()
    logf = open(out / "log.jsonl", "a")

    def checkpoint() -> None:
        _save_checkpoint(ckpt_path, {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
            "cpu_used": clock() - cpu_start, "torch_rng": torch.get_rng_state(),
            "config": json.dumps(asdict(cfg)),
            **({"ema": ema.state_dict()} if ema is not None else {}),
        })

    def validate() -> float:
        model.eval()
        judged = ema.module if ema is not None else model
        judged.eval()
        total = 0.0
        with torch.inference_mode():
            for lightness, lab, rgb in val_batches:
                lt, labt, rgbt = (torch.from_numpy(a).to(device) for a in (lightness, lab, rgb))
                total += float(objective(judged(lt.contiguous(memory_format=torch.channels_last)), labt, rgbt)[0])
        model.train()
        _freeze_pretrained_bn(model)
        return total / len(val_batches)

    model.train()
    _freeze_pretrained_bn(model)
    was_waiting: bool | None = None
    try:
        while True:
            used = clock() - cpu_start
            frac = used / budget
            if frac >= 1.0:
                break
            scale = lr_scale(step, frac, cfg.warmup)
            waiting = frac < cfg.freeze_fraction
            if waiting != was_waiting:
                encoder_waits(opt, waiting)
                was_waiting = waiting
            for g in opt.param_groups:
                g["lr"] = 0.0 if waiting and g.get("pretrained", False) else g["base"] * scale
            lightness, lab, rgb = (a.to(device, non_blocking=True) for a in stream.next())
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                outputs = model(lightness.contiguous(memory_format=torch.channels_last))
            loss, parts = objective(_float32(outputs), lab, rgb)
            if features is not None:
                feat = features(predicted_rgb(lab, outputs[0]), true_rgb(rgb))
                loss = loss + cfg.feature_loss * feat
                parts = {**parts, "feat": float(feat.detach())}
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            now = time.time()
            if now - last_log > 60:
                rec = {"step": step, "cpu_min": round(used / 60, 2), "loss": round(float(loss.detach()), 5), **{k: round(v, 5) for k, v in parts.items()}}
                rec["val"] = round(validate(), 5)
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
                log(json.dumps(rec))
                last_log = now
            if now - last_ckpt > cfg.checkpoint_every_s:
                checkpoint()
                last_ckpt = now
    finally:
        stream.close()
    checkpoint()
    val = validate()
    logf.write(json.dumps({"step": step, "cpu_min": round((clock() - cpu_start) / 60, 2), "final_val": round(val, 5)}) + "\n")
    logf.close()
    final = ema.module if ema is not None else model
    final.eval()
    weights = out / f"{cfg.arch}.safetensors"
    save_weights(final.cpu(), cfg.arch, weights, meta={"train": asdict(cfg), "steps": step, "photos": len(photos)})
    log(f"done: {step} steps, final validation loss {val:.5f}; weights {weights}")
    return weights
