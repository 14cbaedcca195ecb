"""The I/O floor: decoding and encoding alone, the engine's reader and writer, with the gray where the
colour would be. Its phases run without importing torch."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from colorize_cli.settings import RunSettings
from colorize_cli.bench.spec import Clock, read_job, run_jobs, run_settings

if TYPE_CHECKING:
    from colorize_cli.discover.find import Job
    from colorize_cli.io.scanfile import Scan


def out_dtypes(bit_depth: str) -> dict[str, dict[str, str]]:
    """The dtype the engine writes, by format written and scan bit depth: ``{"PNG": {"16": "uint16"}}``.

    Worked out in the parent with the engine's own rule (engine.out_dtype), and handed to the
    I/O floor's children in their spec, so they write what the engine writes without importing torch.
    """
    from types import SimpleNamespace  # noqa: PLC0415

    from colorize_cli.run.processor import out_dtype  # noqa: PLC0415
    from colorize_cli.discover.formats import EXTENSIONS  # noqa: PLC0415

    return {
        fmt: {str(depth): np.dtype(out_dtype(SimpleNamespace(bit_depth=depth), fmt, bit_depth)).name for depth in (8, 16)}  # type: ignore[arg-type]
        for fmt in EXTENSIONS
    }


def _gray_rgb(scan: Scan, job: Job, dtypes: dict[str, dict[str, str]]) -> np.ndarray:
    """The scan's gray as RGB, in the dtype the engine would write for it (no colour maths)."""
    from colorize_cli.io.scanfile import to_8bit  # noqa: PLC0415

    gray = scan.gray
    dtype = np.dtype(dtypes[job.out_fmt][str(scan.bit_depth)])
    if dtype == np.uint16 and gray.dtype == np.uint8:
        gray = gray.astype(np.uint16) * np.uint16(257)
    elif dtype == np.uint8 and gray.dtype == np.uint16:
        gray = to_8bit(gray)
    rgb = np.empty(gray.shape + (3,), dtype=gray.dtype)
    for c in range(3):
        rgb[..., c] = gray
    return rgb


def _write_through(job: Job, scan: Scan, settings: RunSettings, dtypes: dict[str, dict[str, str]]) -> None:
    """The floor's write: the engine's write_image call, with the gray where the colour would be."""
    from colorize_cli.io.scanfile import write_image  # noqa: PLC0415

    job.output.parent.mkdir(parents=True, exist_ok=True)
    write_image(job.output, _gray_rgb(scan, job, dtypes), scan.alpha, job.out_fmt, settings.output.quality,
                scan.meta, keep_times_from=job.input if settings.output.keep_times else None, model_name="bench",
                tiff_compression=settings.output.tiff_compression)


def io_floor_serial(spec: dict) -> dict:
    settings = run_settings(spec)
    jobs = run_jobs(settings)
    pixels = 0
    clock = Clock()
    for job in jobs:
        scan = read_job(job, settings)
        pixels += scan.gray.size
        _write_through(job, scan, settings, spec["out_dtypes"])
    return {**clock.read(), "files": len(jobs), "megapixels": pixels / 1e6, "threads": {"readers": 1, "writers": 0}}


def io_floor(spec: dict) -> dict:
    """Readers decode, writers encode, at most `in_flight` scans held: the engine's shape, minus the network."""
    settings = run_settings(spec)
    es = spec["engine"]  # the engine's counts, worked out by the parent: no torch import here
    jobs = run_jobs(settings)
    slots = threading.Semaphore(es["in_flight"])
    writes: list[Future] = []
    lock = threading.Lock()
    pixels = [0]

    def write(job: Job, scan: Scan) -> None:
        try:
            _write_through(job, scan, settings, spec["out_dtypes"])
        finally:
            slots.release()

    clock = Clock()
    with ThreadPoolExecutor(es["writers"], thread_name_prefix="write") as writers:

        def read(job: Job) -> None:
            try:
                scan = read_job(job, settings)
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
