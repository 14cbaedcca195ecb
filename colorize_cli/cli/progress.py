"""What a run shows a person: a live bar on a terminal, plain lines otherwise, a summary at the end."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from colorize_cli.manifest import FileRecord


class RunDisplay:
    """Per-file feedback. `mode` is "bar" (terminal), "lines" (logs, pipes) or "quiet"."""

    def __init__(self, total: int, mode: str, stream: TextIO | None = None) -> None:
        self.mode = mode
        self.stream = stream or sys.stderr
        self.done = 0
        self.total = total
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        if mode == "bar":
            self._bar = Progress(
                TextColumn("[bold]colorizing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=Console(file=self.stream),
                transient=False,
            )
            self._task = self._bar.add_task("files", total=total, rate="")
            self._bar.start()

    def file(self, rec: FileRecord) -> None:
        with self._lock:
            self.done += 1
            if self._bar is not None:
                elapsed = self._bar.tasks[0].elapsed or 0.0
                rate = f"{self.done / elapsed:.2f} img/s" if elapsed > 0 else ""
                self._bar.update(self._task, advance=1, rate=rate)
                if rec.status == "failed":
                    self._bar.console.print(f"[red]failed[/red] {rec.input}: {rec.reason}", markup=True, highlight=False)
            elif self.mode == "lines":
                detail = f"{rec.seconds:.2f}s" if rec.status == "done" and rec.seconds is not None else (rec.reason or "")
                print(f"[{self.done}/{self.total}] {rec.status:6} {rec.input}  {detail}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def summary_table(summary: dict) -> Table:
    table = Table(title="colorize-dir summary", show_header=True)
    for col in ("done", "skipped", "failed", "time", "throughput"):
        table.add_column(col, justify="right")
    c = summary["counts"]
    table.add_row(
        str(c["done"]), str(c["skipped"]), str(c["failed"]), f"{summary['seconds']:.1f} s",
        f"{summary['images_per_s']:.2f} img/s, {summary['megapixels_per_s']:.1f} MP/s",
    )
    return table
