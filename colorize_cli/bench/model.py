"""The phases that load the model: the network alone, the engine end to end, and each step of the
real path timed one file at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from colorize_cli.settings import resolve_render_size
from colorize_cli.settings import ColorSettings, RunSettings
from colorize_cli.bench.spec import BenchError, Clock, engine_settings, read_job, run_jobs, run_settings

if TYPE_CHECKING:
    from colorize_cli.api import Colorizer
    from colorize_cli.discover.find import Job
    from colorize_cli.run.executors.local import EngineSettings


def _load(spec: dict) -> tuple[RunSettings, Colorizer, EngineSettings, float]:
    """The model as a run loads it, with torch's thread count set as the engine sets it."""
    import torch  # noqa: PLC0415

    from colorize_cli.api import load_model  # noqa: PLC0415

    settings = run_settings(spec)
    t0 = time.perf_counter()
    model = load_model(settings.weights, settings.runtime.device, settings.runtime.fp32)
    load_s = time.perf_counter() - t0
    es = engine_settings(settings)
    if es.torch_threads:
        torch.set_num_threads(es.torch_threads)
    return settings, model, es, load_s


def _working(settings: RunSettings, model: Colorizer, jobs: list[Job]) -> tuple[list[np.ndarray], int]:
    """Every scan's working L* as the engine's readers make it, and the scans' total pixel count."""
    from colorize_cli.inference.predict import working_lightness, working_shape  # noqa: PLC0415

    render = resolve_render_size(settings.color.render_size, model.render_size)
    out, pixels = [], 0
    for job in jobs:
        gray = read_job(job, settings).gray
        pixels += gray.size
        out.append(working_lightness(gray, working_shape(*gray.shape, render)))
    return out, pixels


def _predict_batches(model: Colorizer, lightness: list[np.ndarray], color: ColorSettings, batch_size: int) -> list[np.ndarray]:
    """a*b* for every working L*, in batches of batch_size scans, exactly as the engine does."""
    from colorize_cli.inference.predict import predict_scans  # noqa: PLC0415

    out: list[np.ndarray] = []
    for start in range(0, len(lightness), batch_size):
        for ab in predict_scans(model.predictor, lightness[start : start + batch_size], color, batch_size):
            if isinstance(ab, Exception):
                raise ab
            out.append(ab)
    return out


def _warm_up(model: Colorizer, lightness: np.ndarray, color: ColorSettings, batch_size: int) -> None:
    """One untimed pass, so one-off costs (allocator growth, kernel selection) are not charged
    to a few-file benchmark; a real run amortises them over thousands of files."""
    _predict_batches(model, [lightness] * batch_size, color, batch_size)


def network(spec: dict) -> dict:
    settings, model, es, load_s = _load(spec)
    jobs = run_jobs(settings)
    lightness, pixels = _working(settings, model, jobs)
    _warm_up(model, lightness[0], settings.color, es.batch_size)
    clock = Clock()
    _predict_batches(model, lightness, settings.color, es.batch_size)
    return {**clock.read(), "files": len(jobs), "megapixels": pixels / 1e6, "model_load_s": load_s,
            "working_shape": list(lightness[0].shape), "threads": {"torch": es.torch_threads or None, "batch": es.batch_size}}


def end_to_end(spec: dict) -> dict:
    from colorize_cli.api import run  # noqa: PLC0415

    settings, model, es, load_s = _load(spec)
    jobs = run_jobs(settings)
    _warm_up(model, _working(settings, model, jobs[:1])[0][0], settings.color, es.batch_size)
    gpu = model.predictor.device.type == "cuda"
    if gpu:
        import torch  # noqa: PLC0415

        torch.cuda.reset_peak_memory_stats()
    clock = Clock()
    result = run(settings, model)
    timing = clock.read()
    if gpu:
        timing["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated() / (1 << 20), 1)
        timing["gpu_reserved_mib"] = round(torch.cuda.max_memory_reserved() / (1 << 20), 1)
    if result.counts["failed"] or result.counts["done"] != len(jobs):
        first = result.failures[0] if result.failures else ("?", "not all files were done")
        raise BenchError(f"the run did not colorize every scan ({result.counts}): {first[0]}: {first[1]}")
    return {**timing, "engine_seconds": result.seconds, "files": len(jobs), "megapixels": result.megapixels, "model_load_s": load_s,
            "threads": {"readers": es.readers, "writers": es.writers, "torch": es.torch_threads or None,
                        "batch": es.batch_size, "in_flight": es.in_flight}}


def stages(spec: dict) -> dict:
    """One file at a time, a timer around each step of the real path, to show where time goes."""
    from colorize_cli.run.processor import out_dtype  # noqa: PLC0415
    from colorize_cli.io.scanfile import write_image  # noqa: PLC0415
    from colorize_cli.merge.full_res import colorize_full_res, merge_device, warm_up  # noqa: PLC0415
    from colorize_cli.inference.predict import working_lightness, working_shape  # noqa: PLC0415
    from colorize_cli.io.fsutil import sha256_file  # noqa: PLC0415

    settings, model, es, _ = _load(spec)
    jobs = run_jobs(settings)
    c, o = settings.color, settings.output
    render = resolve_render_size(c.render_size, model.render_size)
    device = merge_device(model.predictor.device)
    totals: dict[str, float] = {}
    pixels = 0

    def timed(name: str, fn: Callable):
        t = time.perf_counter()
        value = fn()
        totals[name] = totals.get(name, 0.0) + time.perf_counter() - t
        return value

    _warm_up(model, _working(settings, model, jobs[:1])[0][0], c, 1)
    if device is None:
        warm_up()  # load numba and the compiled kernel, as the engine does while its first scans decode
    clock = Clock()
    for job in jobs:
        scan = timed("decode (read_scan)", lambda: read_job(job, settings))
        pixels += scan.gray.size
        small = timed("working L* (resize)", lambda: working_lightness(scan.gray, working_shape(*scan.gray.shape, render)))
        ab = timed("network (batch of 1)", lambda: _predict_batches(model, [small], c, 1)[0])
        dtype = out_dtype(scan, job.out_fmt, o.bit_depth)
        rgb = timed(f"merge ({c.upsample})", lambda: colorize_full_res(scan.gray, ab, c.saturation, upsample=c.upsample,
                                                                        out_dtype=dtype, lightness_small=small, device=device))
        other = "bilinear" if c.upsample == "guided" else "guided"
        timed(f"merge ({other}, not used)", lambda: colorize_full_res(scan.gray, ab, c.saturation, upsample=other,
                                                                       out_dtype=dtype, lightness_small=small, device=device))
        job.output.parent.mkdir(parents=True, exist_ok=True)
        timed("encode + write", lambda: write_image(job.output, rgb, scan.alpha, job.out_fmt, o.quality, scan.meta,
                                                    model_name="bench", tiff_compression=o.tiff_compression))
        timed("sha256 input + output", lambda: (sha256_file(job.input), sha256_file(job.output)))
        scan = rgb = None  # let the next file's decode reuse the memory
    return {"seconds": sum(v for k, v in totals.items() if "not used" not in k), "cpu_seconds": clock.read()["cpu_seconds"], "files": len(jobs),
            "megapixels": pixels / 1e6,
            "steps": {k: round(v, 4) for k, v in totals.items()}}
