"""`colorize bench`: how fast a run is, measured against what decoding and encoding alone cost.

A run can never be faster than reading its scans and writing its results, so that is the yardstick.
One invocation measures, on the same files with the same settings:

    io_floor          read_scan, the gray stacked to RGB, write_image (same format, quality, bit depth
                      and metadata as the run), with the engine's reader and writer thread counts
    io_floor_serial   the same, one file at a time on one thread
    network           the model alone on every scan's working L*, batched as the engine batches
    end_to_end        api.run on the folder: the real engine, manifest, hashing and all
    stages            (optional) one file at a time, a timer around each step of the real path
    lengths           (optional) `colorize-dir` itself, as a user runs it, on the first n and the
                      first m of the scans, beside the one-thread floor of the same files: the
                      per-scan cost once running is (t_m - t_n) / (m - n), start-up cancels out,
                      against the floor's per-scan cost (its time on the m files / m); the
                      whole-run ratio is t_m against the floor of those m files

Each phase runs in a child process of its own, so its peak resident memory is its own and no phase
inherits another's heap, caches or thread pools. Wall and CPU seconds are both reported: on a shared
machine the wall time depends on the neighbours, the CPU time much less. With `repeats` > 1 the
phases are interleaved (a b c, a b c, ...) and each one's fastest run is kept, so background load
hurts every phase alike instead of whichever happened to run during it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .settings import ColorSettings, OutputSettings, RunSettings, RuntimeSettings

if TYPE_CHECKING:  # the heavy modules load inside the phases that need them
    from rich.table import Table

    from .api import Colorizer
    from .discover import Job
    from .engine import EngineSettings
    from .imaging import Scan

PHASES = ("io_floor_serial", "io_floor", "network", "end_to_end")
_SCAN_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")


class BenchError(Exception):
    """The benchmark could not run as asked (no scans, a file that fails, a child that died)."""


@dataclass(frozen=True)
class BenchSettings:
    """What is benchmarked: the run's own settings, minus the paths the benchmark chooses itself."""

    weights: Path | None = None  # None: the shipped model if present, else a random ChromaNet of equal cost
    color: ColorSettings = field(default_factory=ColorSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)


# ----------------------------------------------------------------------------------- scans


def _field(rng: np.random.Generator, h: int, w: int, gh: int, gw: int) -> np.ndarray:
    """Smooth random structure: a small uniform field upsampled bicubically to (h, w)."""
    small = rng.random((max(2, gh), max(2, gw)), dtype=np.float32)
    return np.asarray(Image.fromarray(small, "F").resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)


def synthetic_scan(h: int, w: int, seed: int) -> np.ndarray:
    """A gray (h, w) uint8 picture that compresses like a photograph: broad shading, mid-scale
    structure, hard edges and film grain. A flat or purely smooth image would make JPEG decoding
    and encoding unrealistically cheap and flatter the I/O floor; at quality 90 this gives about
    2 bits per pixel, as 6-megapixel scans of prints do."""
    rng = np.random.default_rng(seed)
    img = 0.55 * _field(rng, h, w, 6, 9)
    img += 0.25 * _field(rng, h, w, 40, 60)
    img += 0.12 * _field(rng, h, w, h // 24, w // 24)
    img += 0.15 * (_field(rng, h, w, 24, 36) > 0.6)
    img *= 200.0
    img += 10.0
    img += rng.normal(0.0, 5.0, size=(h, w)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_scans(folder: Path, n: int, megapixels: float = 6.0, seed: int = 0, quality: int = 90) -> list[Path]:
    """Write n synthetic gray JPEG scans of about `megapixels` each (3:2 landscape) into folder."""
    if n < 1 or megapixels <= 0:
        raise BenchError(f"need at least one scan of positive size, got n={n}, megapixels={megapixels}")
    folder.mkdir(parents=True, exist_ok=True)
    w = max(8, round((megapixels * 1e6 * 1.5) ** 0.5))
    h = max(8, round(w / 1.5))
    paths = []
    for i in range(n):
        path = folder / f"scan-{i:04d}.jpg"
        Image.fromarray(synthetic_scan(h, w, seed * 100_003 + i), "L").save(path, "JPEG", quality=quality)
        paths.append(path)
    return paths


def scans_in(folder: Path) -> list[Path]:
    """The image files under a folder (by extension), sorted, for benchmarking a user's own scans."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in _SCAN_SUFFIXES and not p.name.startswith("."))


# ----------------------------------------------------------------------------------- phases
# Each phase function takes a plain-JSON spec and returns a plain-JSON result, so that it runs
# the same in this process or in a child (see _run_child / _child_main).


def peak_rss_mib() -> float | None:
    """This process's peak resident memory, MiB. On Linux VmHWM, the high-water mark of this
    process image alone: ru_maxrss would do, except that in a child started by vfork (as
    subprocess does) it also counts the parent's peak, which the kernel records at exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    try:
        import resource  # noqa: PLC0415 - POSIX only
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


class _Clock:
    """Wall and CPU seconds (this process, all threads) since construction. CPU time shows the work
    a phase did even when other processes share the cores and stretch its wall time."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict:
        return {"seconds": time.perf_counter() - self.wall, "cpu_seconds": round(time.process_time() - self.cpu, 4)}


def _run_settings(spec: dict) -> RunSettings:
    return RunSettings(
        input_root=Path(spec["input_root"]), out_root=Path(spec["out_root"]),
        weights=Path(spec["weights"]) if spec.get("weights") else None, allow_outside_root=True,  # staged links
        color=ColorSettings(**spec["color"]), output=OutputSettings(**spec["output"]),
        runtime=RuntimeSettings(**spec["runtime"]), quiet=True,
    )


def _jobs(settings: RunSettings) -> list[Job]:
    """The run's own jobs (output paths and formats), as the engine would get them."""
    from .discover import DiscoverOptions, discover  # noqa: PLC0415

    jobs, _ = discover(settings.input_root, settings.out_root, DiscoverOptions.from_settings(settings))
    return jobs


def _engine_settings(settings: RunSettings) -> EngineSettings:
    from .devices import resolve_device  # noqa: PLC0415
    from .engine import default_engine_settings  # noqa: PLC0415

    return default_engine_settings(settings.runtime.batch_size, resolve_device(settings.runtime.device))


def out_dtype(scan_bit_depth: int, out_fmt: str, bit_depth: str) -> type:
    """The dtype the engine writes (engine._out_dtype's rule, restated so that the I/O floor's
    children need not import torch; a test keeps the two in step)."""
    sixteen = bit_depth == "16" or (bit_depth == "same" and scan_bit_depth == 16)
    return np.uint16 if sixteen and out_fmt in ("PNG", "TIFF") else np.uint8


def _gray_rgb(scan: Scan, job: Job, output: OutputSettings) -> np.ndarray:
    """The scan's gray as RGB, in the dtype the engine would write for it (no colour maths)."""
    gray = scan.gray
    dtype = out_dtype(scan.bit_depth, job.out_fmt, output.bit_depth)
    if dtype == np.uint16 and gray.dtype == np.uint8:
        gray = gray.astype(np.uint16) * np.uint16(257)
    elif dtype == np.uint8 and gray.dtype == np.uint16:
        gray = ((gray.astype(np.uint32) + 128) // 257).astype(np.uint8)
    rgb = np.empty(gray.shape + (3,), dtype=gray.dtype)
    for c in range(3):
        rgb[..., c] = gray
    return rgb


def _read(job: Job, settings: RunSettings) -> Scan:
    """read_scan, with the file named in the error: a benchmark needs every scan to work."""
    from .imaging import ImageError, read_scan  # noqa: PLC0415

    try:
        return read_scan(job.input, settings.runtime.max_pixels)
    except ImageError as err:
        raise BenchError(f"{job.rel}: {err}") from None


def _write_through(job: Job, scan: Scan, settings: RunSettings) -> None:
    """The floor's write: the engine's write_image call, with the gray where the colour would be."""
    from .imaging import write_image  # noqa: PLC0415

    job.output.parent.mkdir(parents=True, exist_ok=True)
    write_image(job.output, _gray_rgb(scan, job, settings.output), scan.alpha, job.out_fmt, settings.output.quality,
                scan.meta, keep_times_from=job.input if settings.output.keep_times else None, model_name="bench",
                tiff_compression=settings.output.tiff_compression)


def _phase_io_floor_serial(spec: dict) -> dict:
    settings = _run_settings(spec)
    jobs = _jobs(settings)
    pixels = 0
    clock = _Clock()
    for job in jobs:
        scan = _read(job, settings)
        pixels += scan.gray.size
        _write_through(job, scan, settings)
    return {**clock.read(), "files": len(jobs), "megapixels": pixels / 1e6, "threads": {"readers": 1, "writers": 0}}


def _phase_io_floor(spec: dict) -> dict:
    """Readers decode, writers encode, at most `in_flight` scans held: the engine's shape, minus the network."""
    settings = _run_settings(spec)
    es = spec["engine"]  # the engine's counts, worked out by the parent: no torch import here
    jobs = _jobs(settings)
    slots = threading.Semaphore(es["in_flight"])
    writes: list[Future] = []
    lock = threading.Lock()
    pixels = [0]

    def write(job: Job, scan: Scan) -> None:
        try:
            _write_through(job, scan, settings)
        finally:
            slots.release()

    clock = _Clock()
    with ThreadPoolExecutor(es["writers"], thread_name_prefix="write") as writers:

        def read(job: Job) -> None:
            try:
                scan = _read(job, settings)
            except BaseException:
                slots.release()
                raise
            with lock:
                pixels[0] += scan.gray.size
                writes.append(writers.submit(write, job, scan))

        with ThreadPoolExecutor(es["readers"], thread_name_prefix="read") as readers:
            reads = []
            for job in jobs:
                slots.acquire()
                reads.append(readers.submit(read, job))
        for f in reads:
            f.result()
    timing = clock.read()
    for f in writes:
        f.result()
    return {**timing, "files": len(jobs), "megapixels": pixels[0] / 1e6, "threads": {"readers": es["readers"], "writers": es["writers"]}}


def _load(spec: dict) -> tuple[RunSettings, Colorizer, EngineSettings, float]:
    """The model as a run loads it, with torch's thread count set as the engine sets it."""
    import torch  # noqa: PLC0415

    from .api import load_model  # noqa: PLC0415

    settings = _run_settings(spec)
    t0 = time.perf_counter()
    model = load_model(settings.weights, settings.runtime.device, settings.runtime.fp32)
    load_s = time.perf_counter() - t0
    es = _engine_settings(settings)
    if es.torch_threads:
        torch.set_num_threads(es.torch_threads)
    return settings, model, es, load_s


def _working(settings: RunSettings, model: Colorizer, jobs: list[Job]) -> tuple[list[np.ndarray], int]:
    """Every scan's working L* as the engine's readers make it, and the scans' total pixel count."""
    from .inference import working_lightness, working_shape  # noqa: PLC0415

    render = settings.color.render_size or model.render_size
    out, pixels = [], 0
    for job in jobs:
        gray = _read(job, settings).gray
        pixels += gray.size
        out.append(working_lightness(gray, working_shape(*gray.shape, render)))
    return out, pixels


def _predict_batches(model: Colorizer, lightness: list[np.ndarray], color: ColorSettings, batch_size: int) -> list[np.ndarray]:
    """a*b* for every working L*, in batches of batch_size scans, exactly as the engine does."""
    from .inference import predict_scans  # noqa: PLC0415

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


def _phase_network(spec: dict) -> dict:
    settings, model, es, load_s = _load(spec)
    jobs = _jobs(settings)
    lightness, pixels = _working(settings, model, jobs)
    _warm_up(model, lightness[0], settings.color, es.batch_size)
    clock = _Clock()
    _predict_batches(model, lightness, settings.color, es.batch_size)
    return {**clock.read(), "files": len(jobs), "megapixels": pixels / 1e6, "model_load_s": load_s,
            "working_shape": list(lightness[0].shape), "threads": {"torch": es.torch_threads or None, "batch": es.batch_size}}


def _phase_end_to_end(spec: dict) -> dict:
    from .api import run  # noqa: PLC0415

    settings, model, es, load_s = _load(spec)
    jobs = _jobs(settings)
    _warm_up(model, _working(settings, model, jobs[:1])[0][0], settings.color, es.batch_size)
    gpu = model.predictor.device.type == "cuda"
    if gpu:
        import torch  # noqa: PLC0415

        torch.cuda.reset_peak_memory_stats()
    clock = _Clock()
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


def _phase_stages(spec: dict) -> dict:
    """One file at a time, a timer around each step of the real path, to show where time goes."""
    from .imaging import write_image  # noqa: PLC0415
    from .merge import colorize_full_res, merge_device, warm_up  # noqa: PLC0415
    from .inference import working_lightness, working_shape  # noqa: PLC0415
    from .fsutil import sha256_file  # noqa: PLC0415

    settings, model, es, _ = _load(spec)
    jobs = _jobs(settings)
    c, o = settings.color, settings.output
    render = c.render_size or model.render_size
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
    clock = _Clock()
    for job in jobs:
        scan = timed("decode (read_scan)", lambda: _read(job, settings))
        pixels += scan.gray.size
        small = timed("working L* (resize)", lambda: working_lightness(scan.gray, working_shape(*scan.gray.shape, render)))
        ab = timed("network (batch of 1)", lambda: _predict_batches(model, [small], c, 1)[0])
        dtype = out_dtype(scan.bit_depth, job.out_fmt, o.bit_depth)
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


def _cli_argv(spec: dict) -> list[str]:
    """`colorize-dir` on the staged folder with the benchmark's settings (the rest at their defaults)."""
    c, o, rt = spec["color"], spec["output"], spec["runtime"]
    argv = [sys.executable, "-c", "from colorize_cli.cli import dir_main; dir_main()", spec["input_root"],
            "--out", spec["out_root"], "--quiet", "--device", rt["device"], "--batch-size", str(rt["batch_size"]),
            "--upsample", c["upsample"], "--quality", str(o["quality"]), "--tiff-compression", o["tiff_compression"],
            "--allow-outside-root"]  # the staged links
    if spec.get("weights"):
        argv += ["--weights", spec["weights"]]
    if c["render_size"]:
        argv += ["--render-size", str(c["render_size"])]
    if o["format"]:
        argv += ["--format", o["format"]]
    return argv


def _phase_cli(spec: dict) -> dict:
    """The whole command in a process of its own: interpreter start, imports, model load and all."""
    import resource  # noqa: PLC0415 - POSIX; the phase is timed from outside the child

    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(_cli_argv(spec), env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise BenchError(f"colorize-dir failed: {tail[0]}")
    files = sum(1 for p in Path(spec["input_root"]).iterdir())
    written = len(scans_in(Path(spec["out_root"])))
    if written != files:
        raise BenchError(f"colorize-dir wrote {written} of {files} outputs")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": seconds, "cpu_seconds": round(cpu, 4), "files": files}


_PHASE_FUNCS: dict[str, Callable[[dict], dict]] = {
    "io_floor_serial": _phase_io_floor_serial,
    "io_floor": _phase_io_floor,
    "network": _phase_network,
    "end_to_end": _phase_end_to_end,
    "stages": _phase_stages,
    "cli": _phase_cli,
}


def _run_phase(phase: str, spec: dict, isolate: bool) -> dict:
    if phase == "cli":  # it starts its own process; its memory is not measured
        return {**_phase_cli(spec), "peak_rss_mib": None}
    if not isolate:
        out = _PHASE_FUNCS[phase](spec)
        out["peak_rss_mib"] = peak_rss_mib()
        return out
    return _run_child(phase, spec)


def _run_child(phase: str, spec: dict) -> dict:
    """Run one phase in a fresh interpreter; its peak RSS is measured in the child itself."""
    with tempfile.TemporaryDirectory(prefix="colorize-bench-child-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps({"phase": phase, "spec": spec, "result": str(result_path)}))
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        proc = subprocess.run([sys.executable, "-c", "from colorize_cli.bench import _child_main; _child_main()", str(spec_path)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not result_path.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            raise BenchError(f"phase {phase} failed: {tail[0]}")
        return json.loads(result_path.read_text())


def _child_main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    out = _PHASE_FUNCS[job["phase"]](job["spec"])
    out["peak_rss_mib"] = peak_rss_mib()
    Path(job["result"]).write_text(json.dumps(out))


# ----------------------------------------------------------------------------------- driver


def _stage_inputs(scans: Sequence[Path], folder: Path) -> list[Path]:
    """Give the scans a folder of their own (symbolic links, else copies), so the run and the floor
    see exactly these files, and read each once so both start from a warm page cache. Links leave
    the originals untouched (a hard link would change their ctime)."""
    folder.mkdir(parents=True)
    staged = []
    for i, src in enumerate(scans):
        dst = folder / f"{i:05d}-{src.name}"
        try:
            dst.symlink_to(src.resolve())
        except OSError:
            shutil.copyfile(src, dst)
        with open(dst, "rb") as f:
            while f.read(1 << 20):
                pass
        staged.append(dst)
    return staged


def _random_weights(folder: Path) -> Path:
    """A seeded random ChromaNet: the shipped architecture, hence the shipped cost, without the weights."""
    import torch  # noqa: PLC0415

    from .models import build  # noqa: PLC0415
    from .models.weights import save_weights  # noqa: PLC0415

    torch.manual_seed(0)
    path = folder / "random-chromanet.safetensors"
    save_weights(build("chromanet").eval(), "chromanet", path)
    return path


def _model_fields(weights: Path, random: bool) -> dict:
    from .plan import model_ref  # noqa: PLC0415

    ref = model_ref(weights)
    return {"name": "random ChromaNet (shipped weights not found; same cost)" if random else ref.name,
            "weights": None if random else str(weights), "sha256": ref.sha256, "random": random}


def _with_rates(result: dict, files: int, megapixels: float) -> dict:
    secs = max(result["seconds"], 1e-9)
    return {**result, "seconds": round(result["seconds"], 4), "images_per_s": round(files / secs, 3),
            "megapixels_per_s": round(megapixels / secs, 3)}


def run_bench(
    scans: Sequence[Path],
    settings: BenchSettings = BenchSettings(),
    repeats: int = 1,
    phases: Sequence[str] = PHASES,
    stages: bool = False,
    isolate: bool = True,
    workdir: Path | None = None,
    lengths: Sequence[int] = (),
) -> dict:
    """Measure the phases on these scans in one run; returns a JSON-ready dict (see module doc).

    `lengths` (two run lengths n < m, at most the number of scans) adds the steady-state and
    whole-run ratios of `colorize-dir` against the one-thread I/O floor ("steady_state").

    `isolate` runs each phase in a child process (clean per-phase peak memory); without it the
    peaks are the whole process's so far. `workdir` is where inputs are staged and outputs written
    (default: the system temp folder): put it on the disk the real run will write to."""
    from .models.paths import DEFAULT_WEIGHTS  # noqa: PLC0415

    scans = [Path(p) for p in scans]
    if not scans:
        raise BenchError("no scans to benchmark")
    missing = [p for p in scans if not p.is_file()]
    if missing:
        raise BenchError(f"scan not found: {missing[0]}")
    unknown = [p for p in phases if p not in _PHASE_FUNCS]
    if unknown or repeats < 1:
        raise BenchError(f"unknown phase {unknown[0]!r}; choose from {', '.join(_PHASE_FUNCS)}" if unknown else "repeats must be >= 1")
    order = [p for p in PHASES if p in phases] + (["stages"] if stages or "stages" in phases else [])
    lengths = sorted(set(lengths))
    if lengths and (len(lengths) != 2 or lengths[0] < 1 or lengths[1] > len(scans)):
        raise BenchError(f"run lengths must be two different counts between 1 and the {len(scans)} scans, got {lengths}")

    with tempfile.TemporaryDirectory(prefix="colorize-bench-", dir=workdir) as tmp:
        root = Path(tmp)
        staged = _stage_inputs(scans, root / "input")
        random = settings.weights is None and not DEFAULT_WEIGHTS.is_file()
        weights = _random_weights(root) if random else Path(settings.weights or DEFAULT_WEIGHTS)
        base = {"input_root": str(root / "input"), "weights": str(weights), "color": asdict(settings.color),
                "output": asdict(settings.output), "runtime": asdict(settings.runtime)}
        base["engine"] = asdict(_engine_settings(_run_settings({**base, "out_root": str(root / "out")})))
        runs: dict[str, list[dict]] = {p: [] for p in order}
        for r in range(repeats):
            for phase in order:
                out_root = root / f"out-{phase}-{r}"
                runs[phase].append(_run_phase(phase, {**base, "out_root": str(out_root)}, isolate))
                shutil.rmtree(out_root, ignore_errors=True)
        by_length: dict[int, dict[str, list[dict]]] = {n: {"io_floor_serial": [], "cli": []} for n in lengths}
        subsets = {n: root / f"input-{n}" for n in lengths}
        for n, folder in subsets.items():
            _stage_inputs(scans[:n], folder)
        for r in range(repeats):
            for n in lengths:
                for phase in ("io_floor_serial", "cli"):
                    out_root = root / f"out-{phase}-{n}-{r}"
                    spec = {**base, "input_root": str(subsets[n]), "out_root": str(out_root)}
                    by_length[n][phase].append(_run_phase(phase, spec, isolate))
                    shutil.rmtree(out_root, ignore_errors=True)

    floors = [x for v in by_length.values() for x in v["io_floor_serial"]]
    megapixels = max([x["megapixels"] for results in runs.values() for x in results] + [x["megapixels"] for x in floors],
                     default=0.0)  # every phase decodes every scan
    phase_results = {}
    for phase, results in runs.items():
        best = min(results, key=lambda x: x["seconds"])
        peak = [x["peak_rss_mib"] for x in results if x.get("peak_rss_mib") is not None]
        phase_results[phase] = {**_with_rates(best, len(staged), megapixels), "peak_rss_mib": max(peak) if peak else None,
                                "all_seconds": [round(x["seconds"], 4) for x in results]}
    ratios = {}
    if "io_floor" in phase_results:
        floor = phase_results["io_floor"]
        for phase in ("end_to_end", "network", "io_floor_serial"):
            if phase in phase_results:
                ratios[f"{phase}/io_floor"] = round(phase_results[phase]["seconds"] / max(floor["seconds"], 1e-9), 3)
        for phase in ("end_to_end", "network"):  # the same in CPU time: steadier when the machine is shared
            if phase in phase_results:
                ratios[f"{phase}/io_floor (cpu)"] = round(phase_results[phase]["cpu_seconds"] / max(floor["cpu_seconds"], 1e-9), 3)
    peaks = [v["peak_rss_mib"] for v in phase_results.values() if v.get("peak_rss_mib") is not None]
    return {
        "files": len(staged),
        "megapixels": round(megapixels, 3),
        "input_mib": round(sum(p.stat().st_size for p in scans) / (1 << 20), 2),
        "cpu_count": os.cpu_count(),
        "model": _model_fields(weights, random),
        "settings": {"color": asdict(settings.color), "output": asdict(settings.output), "runtime": asdict(settings.runtime),
                     "engine": base["engine"]},
        "repeats": repeats,
        "isolated": isolate,
        "phases": phase_results,
        "ratios": ratios,
        "peak_rss_mib": max(peaks) if peaks else None,
        "steady_state": steady_state(by_length) if lengths else None,
    }


def steady_state(by_length: dict[int, dict[str, list[dict]]]) -> dict:
    """Per-scan cost of colorize-dir once running, from two run lengths (the fastest of the repeats of
    each): start-up, model load and pipeline fill cancel out. The floor's per-scan cost is its time
    on the m files over m (the floor has no start-up to cancel, and this is steadier)."""
    n, m = sorted(by_length)
    best = {k: {ph: min(x["seconds"] for x in v) for ph, v in runs.items()} for k, runs in by_length.items()}
    per_scan = (best[m]["cli"] - best[n]["cli"]) / (m - n)
    floor_per_scan = max(best[m]["io_floor_serial"] / m, 1e-9)  # no start-up in it: its clock starts after imports
    cpu = {k: {ph: min(x["cpu_seconds"] for x in v) for ph, v in runs.items()} for k, runs in by_length.items()}
    cpu_per_scan = (cpu[m]["cli"] - cpu[n]["cli"]) / (m - n)
    floor_cpu_per_scan = max(cpu[m]["io_floor_serial"] / m, 1e-9)
    return {
        "lengths": [n, m],
        "cli_seconds": {str(k): round(best[k]["cli"], 6) for k in (n, m)},
        "floor_seconds": {str(k): round(best[k]["io_floor_serial"], 6) for k in (n, m)},
        "cli_cpu_seconds": {str(k): cpu[k]["cli"] for k in (n, m)},
        "floor_cpu_seconds": {str(k): cpu[k]["io_floor_serial"] for k in (n, m)},
        "per_scan_s": per_scan,
        "floor_per_scan_s": floor_per_scan,
        "start_up_s": round(best[n]["cli"] - n * per_scan, 3),
        "steady_ratio": round(per_scan / floor_per_scan, 3),
        "steady_cpu_ratio": round(cpu_per_scan / floor_cpu_per_scan, 3),  # CPU time: steadier on a shared machine
        "whole_run_ratio": round(best[m]["cli"] / max(best[m]["io_floor_serial"], 1e-9), 3),
    }


# ----------------------------------------------------------------------------------- display

_LABELS = {
    "io_floor": "I/O floor",
    "io_floor_serial": "I/O floor, 1 thread",
    "network": "network alone",
    "end_to_end": "end to end",
}
_CAPTION = ("I/O floor: decode + gray-as-RGB encode of the same files, same format and quality, with the engine's "
            "reader/writer threads. End to end: colorize-dir's engine. CPU s: all threads' CPU time.")


def bench_table(result: dict) -> Table:
    """A rich Table of a run_bench result."""
    from rich.table import Table  # noqa: PLC0415

    r = result
    title = (f"colorize bench: {r['files']} scans, {r['megapixels']:.1f} MP, {r['input_mib']:.1f} MiB in, "
             f"{r['cpu_count']} CPUs, model: {r['model']['name']}")
    table = Table(title=title, caption=_CAPTION)
    for col in ("phase", "seconds", "images/s", "MP/s", "x I/O floor", "CPU s", "peak RSS MiB"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    floor = r["phases"].get("io_floor", {}).get("seconds")
    for phase, p in r["phases"].items():
        if phase == "stages":
            continue
        ratio = f"{p['seconds'] / floor:.2f}" if floor else "-"
        rss = f"{p['peak_rss_mib']:.0f}" if p.get("peak_rss_mib") is not None else "-"
        table.add_row(_LABELS[phase], f"{p['seconds']:.2f}", f"{p['images_per_s']:.2f}", f"{p['megapixels_per_s']:.1f}", ratio,
                      f"{p['cpu_seconds']:.2f}", rss)
    stages = r["phases"].get("stages")
    if stages:
        table.add_row("steps, one file at a time:", "", "", "", "", "", "")
        for step, secs in stages["steps"].items():
            table.add_row(f"  {step}", f"{secs:.2f}", "", "", f"{secs / floor:.2f}" if floor else "-", "", "")
    return table


_SHARES = {"decode": ("decode", "working L*"), "network": ("network",), "merge": ("merge",), "encode": ("encode", "sha256")}


def time_shares(stages: dict) -> dict[str, float]:
    """Share of one-file-at-a-time time in decode / network / merge / encode (the merge not used left out)."""
    steps = {k: v for k, v in stages["steps"].items() if "not used" not in k}
    total = max(sum(steps.values()), 1e-9)
    return {group: round(sum(v for k, v in steps.items() if k.startswith(prefixes)) / total, 3)
            for group, prefixes in _SHARES.items()}


def summary_lines(result: dict) -> list[str]:
    """The few numbers a reader wants from a run, as sentences (printed under the table)."""
    lines = []
    ratio = result["ratios"].get("end_to_end/io_floor")
    if ratio is not None:
        peak = f"; peak resident memory {result['peak_rss_mib']:.0f} MiB" if result["peak_rss_mib"] else ""
        lines.append(f"end to end takes {ratio:.2f}x the I/O floor{peak}")
    e2e = result["phases"].get("end_to_end", {})
    if "gpu_peak_mib" in e2e:
        lines.append(f"GPU: {e2e['images_per_s']:.2f} images/s end to end, GPU memory peak {e2e['gpu_peak_mib']:.0f} MiB "
                     f"allocated, {e2e['gpu_reserved_mib']:.0f} MiB reserved")
    if "stages" in result["phases"]:
        shares = time_shares(result["phases"]["stages"])
        lines.append("time shares, one file at a time: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    st = result.get("steady_state")
    if st:
        n, m = st["lengths"]
        lines.append(f"colorize-dir steady state: {st['per_scan_s'] * 1e3:.0f} ms per scan against a one-thread floor of "
                     f"{st['floor_per_scan_s'] * 1e3:.0f} ms: {st['steady_ratio']:.2f}x (from runs of {n} and {m} scans; "
                     f"in CPU time {st['steady_cpu_ratio']:.2f}x)")
        lines.append(f"colorize-dir whole run of {m} scans: {st['cli_seconds'][str(m)]:.1f} s, {st['whole_run_ratio']:.2f}x the "
                     f"one-thread floor of the same files ({st['floor_seconds'][str(m)]:.1f} s); start-up {st['start_up_s']:.1f} s")
    return lines


def bench_main(
    scans: Path | None = None,
    count: int = 20,
    megapixels: float = 6.0,
    seed: int = 0,
    weights: Path | None = None,
    device: str = "auto",
    render_size: int = 0,
    upsample: str = "guided",
    fmt: str | None = None,
    quality: int = 92,
    batch_size: int = 8,
    repeats: int = 1,
    stages: bool = False,
    json_out: bool = False,
    workdir: Path | None = None,
    max_ratio: float | None = None,
    phases: Sequence[str] = PHASES,
    lengths: Sequence[int] = (),
) -> int:
    """`colorize bench`. Benchmarks the scans under `scans`, or `count` generated gray JPEGs of
    `megapixels` each. Prints a table (or JSON with json_out). Returns the exit status: 0, or 1
    when end_to_end/io_floor exceeds `max_ratio`, or 2 when the benchmark cannot run. With `lengths`
    (n, m), at least m scans are generated. On CUDA the steps are timed too, for their shares."""
    from rich.console import Console  # noqa: PLC0415

    err = Console(stderr=True)
    settings = BenchSettings(
        weights=weights,
        color=ColorSettings(render_size=render_size, upsample=upsample),
        output=OutputSettings(format=fmt.lower() if fmt else None, quality=quality),
        runtime=RuntimeSettings(device=device, batch_size=batch_size),
    )
    try:
        with tempfile.TemporaryDirectory(prefix="colorize-bench-scans-", dir=workdir) as tmp:
            if scans is None:
                if not json_out:
                    err.print(f"generating {count} gray JPEG scans of {megapixels:g} MP ...")
                files = make_scans(Path(tmp), max([count, *lengths]), megapixels, seed)
            else:
                if not scans.is_dir():
                    raise BenchError(f"{scans} is not a folder")
                files = scans_in(scans)
            result = run_bench(files, settings, repeats=repeats, phases=phases, stages=stages or device.startswith("cuda"),
                               workdir=workdir, lengths=lengths)
    except Exception as e:  # noqa: BLE001 - one clear line, as every command does
        err.print(f"colorize bench: error: {e}", markup=False, highlight=False)
        return 2
    ratio = result["ratios"].get("end_to_end/io_floor")
    if json_out:
        print(json.dumps(result, indent=1))
    else:
        Console().print(bench_table(result))
        for line in summary_lines(result):
            Console().print(line, markup=False, highlight=False)
    return 1 if max_ratio is not None and ratio is not None and ratio > max_ratio else 0
