"""What every phase shares: the benchmark's settings and errors, the plain-JSON spec a phase gets
(so it runs the same in this process or in a child), its clock and its peak memory."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from colorize_cli.settings import ColorSettings, OutputSettings, RunSettings, RuntimeSettings

if TYPE_CHECKING:  # the heavy modules load inside the phases that need them
    from colorize_cli.discover.find import Job
    from colorize_cli.run.executors.local import EngineSettings
    from colorize_cli.io.scanfile import Scan


class BenchError(Exception):
    """The benchmark could not run as asked (no scans, a file that fails, a child that died)."""


@dataclass(frozen=True)
class BenchSettings:
    """What is benchmarked: the run's own settings, minus the paths the benchmark chooses itself."""

    weights: Path | None = None  # None: the shipped model if present, else a random ChromaNet of equal cost
    color: ColorSettings = field(default_factory=ColorSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)


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


class Clock:
    """Wall and CPU seconds (this process, all threads) since construction. CPU time shows the work
    a phase did even when other processes share the cores and stretch its wall time."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict:
        return {"seconds": time.perf_counter() - self.wall, "cpu_seconds": round(time.process_time() - self.cpu, 4)}


def run_settings(spec: dict) -> RunSettings:
    return RunSettings(
        input_root=Path(spec["input_root"]), out_root=Path(spec["out_root"]),
        weights=Path(spec["weights"]) if spec.get("weights") else None, allow_outside_root=True,  # staged links
        color=ColorSettings(**spec["color"]), output=OutputSettings(**spec["output"]),
        runtime=RuntimeSettings(**spec["runtime"]), quiet=True,
    )


def run_jobs(settings: RunSettings) -> list[Job]:
    """The run's own jobs (output paths and formats), as the engine would get them."""
    from colorize_cli.discover.find import DiscoverOptions, discover  # noqa: PLC0415

    jobs, _ = discover(settings.input_root, settings.out_root, DiscoverOptions.from_settings(settings))
    return jobs


def engine_settings(settings: RunSettings) -> EngineSettings:
    from colorize_cli.inference.devices import resolve_device  # noqa: PLC0415
    from colorize_cli.run.executors.local import default_engine_settings  # noqa: PLC0415

    return default_engine_settings(settings.runtime.batch_size, resolve_device(settings.runtime.device))


def read_job(job: Job, settings: RunSettings) -> Scan:
    """read_scan, with the file named in the error: a benchmark needs every scan to work."""
    from colorize_cli.io.scanfile import ImageError, read_scan  # noqa: PLC0415

    try:
        return read_scan(job.input, settings.runtime.max_pixels)
    except ImageError as err:
        raise BenchError(f"{job.rel}: {err}") from None
