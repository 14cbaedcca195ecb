"""The library's public API; the CLI is a thin layer over these four calls.

    model = load_model()                                  # shipped weights, verified
    rgb = colorize_image(Image.open("scan.tif"), model)  # one image, in memory
    plan = plan_run(settings)                             # what a folder run would do, and why
    result = run(settings, model)                         # do it
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorize_cli.inference.colorizer import Colorizer, from_module, load_model
from colorize_cli.discover.find import check_out_root
from colorize_cli.run.executors.local import Engine, RunResult, StopFlag, default_engine_settings
from colorize_cli.io import scanfile as imaging
from colorize_cli.inference.predict import colorize_gray
from colorize_cli.manifest import FileRecord, RunLock
from colorize_cli.models.weights import DEFAULT_WEIGHTS
from colorize_cli.run.plan import ModelRef, Plan, model_ref, plan_run
from colorize_cli.settings import ColorSettings, RunSettings

__all__ = ["Colorizer", "from_module", "load_model", "colorize_image", "plan_run", "run", "model_ref"]


def colorize_image(image: Image.Image, model: Colorizer, settings: ColorSettings = ColorSettings(), batch_size: int = 8) -> Image.Image:
    """Colorize one image in memory; returns RGB (or RGBA when the input had alpha), same size.
    EXIF orientation is applied; metadata is not carried (that is the file writer's job)."""
    scan = imaging.scan_from_image(image)
    dtype = np.uint16 if scan.bit_depth == 16 else np.uint8
    rgb = colorize_gray(scan.gray, model.predictor, settings, settings.render_size or model.render_size, batch_size, dtype)
    if dtype == np.uint16:  # Pillow has no 16-bit RGB image mode: hand back 8 bits
        rgb = imaging.to_8bit(rgb)
    out = Image.fromarray(rgb, "RGB")
    if scan.alpha is not None:
        alpha = scan.alpha if scan.alpha.dtype == np.uint8 else imaging.to_8bit(scan.alpha)
        out.putalpha(Image.fromarray(alpha, "L"))
    return out


def run(
    settings: RunSettings,
    model: Colorizer | None = None,
    on_file: Callable[[FileRecord], None] = lambda rec: None,
    argv: Sequence[str] = (),
    stop: StopFlag | None = None,
    on_plan: Callable[[Plan], None] = lambda plan: None,
) -> RunResult:
    """Colorize a folder tree as planned; resumes from the manifest by default. Holds the output
    folder's lock for the whole run, so a second run on the same folder is refused (shards K/N of
    one N may share it). ``stop`` carries the caller's signal policy (interrupts.StopFlag). With
    settings.engine "ray" the files go to a Ray cluster's workers (`model` is not used)."""
    if settings.engine == "ray":
        from colorize_cli.run.executors.ray import run_ray  # noqa: PLC0415

        return run_ray(settings, on_file, argv, stop, on_plan)
    model = model or load_model(settings.weights, settings.runtime.device, settings.runtime.fp32)
    ref = ModelRef(Path(settings.weights or DEFAULT_WEIGHTS), model.info.name, model.info.sha256)
    check_out_root(settings.input_root, settings.out_root, settings.exclude)  # before anything is created
    settings.out_root.mkdir(parents=True, exist_ok=True)
    with RunLock(settings.out_root, settings.shard, argv=list(argv)):
        plan = plan_run(settings, ref)
        on_plan(plan)
        return _run_planned(settings, model, plan, on_file, argv, stop)


def _run_planned(settings: RunSettings, model: Colorizer, plan: Plan, on_file: Callable[[FileRecord], None],
                 argv: Sequence[str], stop: StopFlag | None) -> RunResult:
    es = default_engine_settings(settings.runtime.batch_size, model.device)
    if es.torch_threads:
        torch.set_num_threads(es.torch_threads)
    thumbs = None
    if settings.report:
        from colorize_cli.report.thumbnails import ThumbnailWriter  # noqa: PLC0415

        thumbs = ThumbnailWriter(settings.out_root)
    engine = Engine(model.predictor, model.info.name, es, on_file=on_file, thumbnails=thumbs)
    result = engine.run(plan, list(argv), stop)
    if settings.report:
        from colorize_cli.report.sheet import write_report  # noqa: PLC0415

        write_report(settings.out_root, plan.manifest, input_root=settings.input_root)
    return result
