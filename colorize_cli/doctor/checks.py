"""`colorize doctor`: is the install whole, which devices are there, and does each one give the
same colours as the CPU?

A user's first question after installing is "is my GPU used?"; the second, after a bad driver or
a damaged download, is "why are my colours wrong?". The checks answer both in one command, and
it is the one short script to run when a GPU is at hand: its output says everything a GPU check
needs (autocast dtype, batch size, peak GPU memory, throughput at 6 MP).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from colorize_cli import __version__
from colorize_cli.bench import synthetic_scan
from colorize_cli.inference.devices import autocast_dtype
from colorize_cli.inference.fold import fold_batch_norms
from colorize_cli.inference.predict import Predictor, colorize_gray
from colorize_cli.models.checkpoints import load_checkpoint
from colorize_cli.models.spec import model_spec
from colorize_cli.errors import WeightsError
from colorize_cli.settings import ColorSettings

# Largest mean absolute difference (8-bit code values) between a device's result and the CPU's.
# Half-precision autocast on a GPU moves predicted chroma slightly; a wrong kernel or a broken
# driver moves it by tens of code values.
TOLERANCE = 2.0
TEST_SHAPE = (384, 512)
SIX_MP = (2000, 3000)


@dataclass
class DeviceCheck:
    device: str
    name: str
    memory_gib: float | None
    autocast: str
    batch_size: int
    seconds_per_test_image: float | None = None
    mean_abs_diff_vs_cpu: float | None = None
    max_abs_diff_vs_cpu: int | None = None
    images_per_s_6mp: float | None = None
    peak_gpu_memory_mib: float | None = None
    problem: str | None = None


@dataclass
class Report:
    package: str
    python: str
    platform: str
    torch: str
    cuda: str | None
    cudnn: int | None
    mps: bool
    weights: str
    weights_sha256: str | None = None
    weights_problem: str | None = None
    model_family: str | None = None  # chromanet, ddcolor, eccv16, siggraph17, ...
    model_parameters: int | None = None
    model_licence: str | None = None  # the weights' licence note, from the family's ModelSpec
    devices: list[DeviceCheck] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = [f"weights: {self.weights_problem}"] if self.weights_problem else []
        return found + [f"{d.device}: {d.problem}" for d in self.devices if d.problem]


def _devices() -> list[tuple[torch.device, str, float | None]]:
    """(device, name, memory GiB) for the CPU and every GPU torch can use."""
    found = [(torch.device("cpu"), platform.processor() or platform.machine(), None)]
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        props = torch.cuda.get_device_properties(i)
        found.append((torch.device(f"cuda:{i}"), props.name, props.total_memory / 2**30))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append((torch.device("mps"), "Apple Metal", None))
    return found


def _timed(fn: Callable[[], np.ndarray], device: torch.device) -> tuple[np.ndarray, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def check_device(model: torch.nn.Module, device: torch.device, name: str, memory: float | None, gray: np.ndarray,
                 reference: np.ndarray | None, batch_size: int, six_mp_images: int) -> tuple[DeviceCheck, np.ndarray | None]:
    """Colorize the test image on one device (after a warm-up call), compare with the CPU's result,
    and time a few 6 MP scans through the same in-memory path the engine uses."""
    dtype = autocast_dtype(device, fp32=False)
    check = DeviceCheck(str(device), name, memory, str(dtype).replace("torch.", "") if dtype else "none (float32)", batch_size)
    try:
        net = model.to(device).to(memory_format=torch.channels_last)
        predictor = Predictor(net, device, dtype)
        color = ColorSettings()
        render = int(net.default_render_size)

        def run(img: np.ndarray) -> np.ndarray:
            return colorize_gray(img, predictor, color, render, batch_size, np.uint8)

        run(gray)  # warm-up: kernels, allocator, caches
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        result, seconds = _timed(lambda: run(gray), device)
        check.seconds_per_test_image = seconds
        if reference is not None:
            diff = np.abs(result.astype(np.int16) - reference.astype(np.int16))
            check.mean_abs_diff_vs_cpu, check.max_abs_diff_vs_cpu = float(diff.mean()), int(diff.max())
            if check.mean_abs_diff_vs_cpu > TOLERANCE:
                check.problem = (f"result differs from the CPU's by {check.mean_abs_diff_vs_cpu:.2f} code values on average "
                                 f"(tolerance {TOLERANCE}): the device computes wrongly")
        if six_mp_images:
            big = [synthetic_scan(*SIX_MP, seed=i) for i in range(six_mp_images)]
            _, total = _timed(lambda: [run(b) for b in big][-1], device)
            check.images_per_s_6mp = six_mp_images / total
        if device.type == "cuda":
            check.peak_gpu_memory_mib = torch.cuda.max_memory_allocated(device) / 2**20
        return check, result
    except Exception as e:  # noqa: BLE001 - any failure on a device is the finding we report
        check.problem = f"{type(e).__name__}: {e}"
        return check, None
    finally:
        model.to("cpu")


def diagnose(weights: Path | None = None, batch_size: int = 8, six_mp_images: int | None = None) -> Report:
    """Run every check; nothing raises, every problem lands in the report."""
    from colorize_cli.models.paths import DEFAULT_WEIGHTS  # noqa: PLC0415

    path = Path(weights or DEFAULT_WEIGHTS)
    report = Report(
        package=__version__, python=platform.python_version(), platform=platform.platform(), torch=torch.__version__,
        cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        mps=bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()), weights=str(path),
    )
    try:
        model, info = load_checkpoint(path)  # ours: the sha256 sidecar verified; a user's checkpoint: hashed
        report.weights_sha256 = info.sha256
        spec = model_spec(model)
        report.model_family, report.model_licence = spec.family, spec.licence
        report.model_parameters = sum(p.numel() for p in model.parameters())  # the checkpoint's, before folding
        fold_batch_norms(model.eval())  # timed as the engines run it (inference.colorizer.load_model)
    except WeightsError as e:
        report.weights_problem = str(e)
        return report
    gray = synthetic_scan(*TEST_SHAPE, seed=7)
    reference = None
    for device, name, memory in _devices():
        on_gpu = device.type != "cpu"
        count = six_mp_images if six_mp_images is not None else (8 if on_gpu else 2)
        check, result = check_device(model, device, name, memory, gray, reference, batch_size, count)
        if device.type == "cpu":
            reference = result
        report.devices.append(check)
    return report
