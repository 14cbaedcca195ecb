"""The Ray actor: one per worker process, holding one loaded model; it runs the run's own
per-file processor on each file it is handed and leaves a receipt of each record beside the
manifest (receipts.py), so a driver that dies loses nothing that was finished."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from colorize_cli.discover.find import Job
from colorize_cli.manifest import FileRecord, ManifestWriter, Reason
from colorize_cli.run.context import RunContext
from colorize_cli.run.executors.receipts import receipts_root
from colorize_cli.settings import RunSettings


class ColorizeWorker:
    """One Ray actor: loads the model once, from the weights path, and colorizes files one at a
    time with the run's own per-file processor. Created with everything it needs, so a
    restarted actor is the same worker; each call brings the run's context."""

    def __init__(self, settings: RunSettings, manifest: str, run_id: str, threads: int) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does, before torch loads
        import torch  # noqa: PLC0415

        torch.set_num_threads(threads)
        from colorize_cli.inference.colorizer import load_model  # noqa: PLC0415
        from colorize_cli.errors import DeviceError, WeightsError  # noqa: PLC0415
        from colorize_cli.run.executors.local import default_engine_settings  # noqa: PLC0415

        try:
            self.model = load_model(settings.weights, settings.runtime.device, settings.runtime.fp32, settings.model_family)
        except (WeightsError, DeviceError) as e:  # told to the driver, which stops with the local engine's words
            self.info = {"error": str(e)}
            return
        self.batch_size = default_engine_settings(settings.runtime.batch_size, self.model.device).batch_size
        self.processor: Any = None
        self.receipt = receipts_root(Path(manifest)) / run_id / f"{socket.gethostname()}-{os.getpid()}.jsonl"
        import ray  # noqa: PLC0415

        self.info = {"model": self.model.info.name, "sha256": self.model.info.sha256, "family": self.model.family, "render": self.model.render_size,
                     "device": str(self.model.device), "host": socket.gethostname(), "pid": os.getpid(), "threads": torch.get_num_threads(),
                     "worker_id": ray.get_runtime_context().get_worker_id()}

    def ready(self) -> dict:
        return self.info

    def ping(self) -> bool:
        """Called in the `watch` concurrency group: answers while a file is being processed."""
        return True

    def process(self, ctx: RunContext, job: Job, why: Reason) -> FileRecord:
        if self.processor is None or self.processor.ctx != ctx:
            from colorize_cli.run.processor import FileProcessor  # noqa: PLC0415

            thumbs = None
            if ctx.settings.report:
                from colorize_cli.report.thumbnails import ThumbnailWriter  # noqa: PLC0415

                thumbs = ThumbnailWriter(ctx.out_root)
            self.processor = FileProcessor(self.model.predictor, self.model.info.name, ctx, self.batch_size, thumbs)
        rec = self.processor.process(job, why)
        self._write_receipt(rec)
        return rec

    def _write_receipt(self, rec: FileRecord) -> None:
        """Best effort: a lost receipt only means the file is redone if the driver dies too."""
        try:
            self.receipt.parent.mkdir(parents=True, exist_ok=True)
            with ManifestWriter(self.receipt) as w:
                w.write(rec)
        except OSError:
            pass
