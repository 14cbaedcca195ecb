"""The local executor: decode pool -> batched network -> finish pool, joined by bounded queues.

    reader threads:  read + hash, decode, working L*  (one read; Pillow decodes without the GIL)
    main thread:     network on batches of tiles      (torch's own threads)
    writer threads:  upsample + merge + encode + write (numpy / Pillow, mostly without the GIL)

At most `in_flight` scans are held between reading and writing, so memory stays flat however
many files a run has. The stages themselves are run/processor.py's; the run around them (lock,
manifest, tally, signals) is run/session.py's. A full disk or a signal stops new files from
starting and lets those in flight finish (interrupts.py).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from colorize_cli.discover.find import Job
from colorize_cli.inference.colorizer import Colorizer
from colorize_cli.manifest import Reason
from colorize_cli.merge.full_res import merge_device, warm_up
from colorize_cli.run.context import ModelInfo, RunContext
from colorize_cli.run.interrupts import StopFlag
from colorize_cli.run.plan import ModelRef
from colorize_cli.run.processor import FileProcessor, Loaded
from colorize_cli.run.session import Emit
from colorize_cli.settings import RunSettings


@dataclass(frozen=True)
class EngineSettings:
    """Scheduling knobs derived from the run settings and the machine."""

    batch_size: int = 8
    readers: int = 2
    writers: int = 2
    in_flight: int = 16
    torch_threads: int = 0  # 0: leave torch's default


def default_engine_settings(batch_size: int, device: torch.device) -> EngineSettings:
    cores = os.cpu_count() or 2
    if device.type == "cpu":
        # Half the cores for the network, the rest for decoding and the full-resolution merge:
        # measured on 2 cores (colorize bench), 2 torch threads fighting 4 codec threads took
        # twice the CPU time of 1 (OpenMP spin-waits), for no gain in wall time. The merge kernel
        # is single-threaded (numba without a thread pool): one scan per writer thread.
        return EngineSettings(batch_size=batch_size, readers=2, writers=max(2, cores // 2), in_flight=max(8, 2 * batch_size),
                              torch_threads=max(1, cores // 2))
    # On a GPU the network and the merge run there: every core decodes or encodes.
    return EngineSettings(batch_size=batch_size, readers=max(2, cores // 2), writers=max(2, cores // 2), in_flight=max(16, 3 * batch_size))


class LocalExecutor:
    """Runs a plan's files on this machine with one loaded model (see the module docstring)."""

    def __init__(self, model: Colorizer, es: EngineSettings | None = None) -> None:
        self.model = model
        self.es = es or default_engine_settings(8, model.device)
        self.settings: RunSettings | None = None
        self.weights = Path()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def start(self, settings: RunSettings, manifest: Path, run_id: str) -> ModelInfo:
        from colorize_cli.models.paths import DEFAULT_WEIGHTS  # noqa: PLC0415

        self.settings = settings
        if self.es.torch_threads:
            torch.set_num_threads(self.es.torch_threads)
        info = self.model.info
        return ModelInfo(ModelRef(Path(settings.weights or DEFAULT_WEIGHTS), info.name, info.sha256, self.model.family), self.model.render_size)

    def finished(self, manifest: Path, run_id: str, complete: bool) -> None:
        return None

    def processor(self, ctx: RunContext) -> FileProcessor:
        thumbs = None
        if ctx.settings.report:
            from colorize_cli.report.thumbnails import ThumbnailWriter  # noqa: PLC0415

            thumbs = ThumbnailWriter(ctx.out_root)
        return FileProcessor(self.model.predictor, self.model.info.name, ctx, self.es.batch_size, thumbs)

    def execute(self, ctx: RunContext, todo: Sequence[tuple[Job, Reason]], emit: Emit, stop: StopFlag) -> int:
        """Every file of ``todo`` through the overlapped stages; returns how many were never started."""
        proc = self.processor(ctx)
        es = self.es
        slots = threading.Semaphore(es.in_flight)
        loaded: queue.Queue = queue.Queue()
        todo = list(todo)
        started = 0
        readers = ThreadPoolExecutor(es.readers, thread_name_prefix="read")
        writers = ThreadPoolExecutor(es.writers, thread_name_prefix="write")
        if merge_device(self.model.predictor.device) is None and todo:
            writers.submit(warm_up)  # while the first scans are read and through the network

        def feed() -> None:
            """Start reads while slots are free; the None sentinel goes after the last read lands."""
            nonlocal started
            for job, why in todo:
                while not slots.acquire(timeout=0.2):
                    if stop:
                        break
                else:
                    if not stop:
                        started += 1
                        fut = readers.submit(proc.read, job, why)
                        fut.add_done_callback(lambda f: loaded.put(f.result()))
                        continue
                    slots.release()
                break
            readers.shutdown(wait=True)  # every read's callback has run: no list of futures (and scans) kept
            loaded.put(None)

        def finish(item: Loaded, ab: list[np.ndarray]) -> None:
            try:
                rec = proc.finish_or_fail(item, ab)
            finally:
                item.release()
                slots.release()
            emit(rec)

        feeder = threading.Thread(target=feed, name="feed", daemon=True)
        feeder.start()
        in_reading = True
        try:
            while in_reading:
                batch: list[Loaded] = []
                item = loaded.get()
                while True:
                    if item is None:
                        in_reading = False
                        break
                    if item.error is not None:
                        emit(proc.failed(item))
                        slots.release()
                    else:
                        batch.append(item)
                    if len(batch) >= es.batch_size:
                        break
                    try:
                        item = loaded.get_nowait()
                    except queue.Empty:
                        break
                for it, ab in zip(batch, proc.predict(batch)):
                    if isinstance(ab, Exception):
                        emit(proc.failed(it, ab))
                        it.release()
                        slots.release()
                    else:
                        writers.submit(finish, it, ab)
        finally:
            readers.shutdown(wait=True)
            writers.shutdown(wait=True)
        return len(todo) - started
