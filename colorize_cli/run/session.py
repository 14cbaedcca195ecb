"""A run, start to end, the same for every executor: lock, plan, manifest, tally, report, exit code.

    RunSession.run():
        check the output folder, take its lock
        executor.start()            the model is loaded (here, or on every Ray worker)
        plan                        what to do and why, from the manifest
        context                     settings resolved once (render size, settings key, run id)
        stale temps removed, run header and skip records written
        executor.execute(...)       one record per file, appended as soon as it is known
        end record, report, result

The executors (run/executors/) only process files; nothing here knows which one runs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from colorize_cli.discover.find import Job, check_out_root
from colorize_cli.discover.outnames import first_page_name
from colorize_cli.failures import Kind, describe_failure, is_disk_full
from colorize_cli.io.fsutil import owner_tag, temp_owner, temp_target
from colorize_cli.manifest import FileRecord, ManifestWriter, RunLock, end_record, live_owners, manifest_path, new_run_id, run_header
from colorize_cli.run.context import ModelInfo, RunContext, resolve_context
from colorize_cli.run.interrupts import StopFlag, handle_signals
from colorize_cli.manifest import Reason
from colorize_cli.run.plan import Plan, plan_run
from colorize_cli.settings import RunSettings

Emit = Callable[[FileRecord], None]


@dataclass(frozen=True)
class Failure:
    """One failed file, as the summary and `--json` show it."""

    input: str
    kind: Kind
    reason: str


@dataclass
class RunResult:
    counts: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0, "skipped": 0})
    seconds: float = 0.0
    megapixels: float = 0.0
    interrupted: bool = False
    disk_full: bool = False
    left: int = 0  # files not started because the run stopped early (-1: unknown)
    failures: list[Failure] = field(default_factory=list)
    manifest_error: str | None = None  # the manifest could not be appended to; the run stopped
    stale_temps: int = 0  # temp files of a killed earlier run, removed before starting
    lost: str | None = None  # why the executor stopped early (every Ray worker gone), if it did
    previously_failed: int = 0  # files still failed from an earlier run, not retried by this one

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        failed = self.counts["failed"] or self.previously_failed
        return 1 if failed or self.disk_full or self.manifest_error or self.lost else 0


class Executor(Protocol):
    """What runs the files of a plan: the local engine or Ray. Used as a context manager around
    the whole locked run (Ray connects and disconnects there)."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...

    def start(self, settings: RunSettings, manifest: Path, run_id: str) -> ModelInfo:
        """Load the model wherever files will be processed; say which model it is."""
        ...

    def execute(self, ctx: RunContext, todo: Sequence[tuple[Job, Reason]], emit: Emit, stop: StopFlag) -> int:
        """Process every file (one record each, through ``emit``); return how many were never started."""
        ...

    def finished(self, manifest: Path, run_id: str, complete: bool) -> None:
        """After the end record: ``complete`` when every record sent has been written."""
        ...


class RunSession:
    """One `colorize-dir` run over one executor. ``stop`` carries the caller's signal policy."""

    def __init__(self, settings: RunSettings, executor: Executor, on_file: Emit = lambda rec: None,
                 on_plan: Callable[[Plan], None] = lambda plan: None, argv: Sequence[str] = (), stop: StopFlag | None = None) -> None:
        self.settings = settings
        self.executor = executor
        self.on_file = on_file
        self.on_plan = on_plan
        self.argv = list(argv)
        self.stop = StopFlag() if stop is None else stop  # a StopFlag is falsy until set
        self.result = RunResult()
        self._tally_lock = threading.Lock()

    def run(self) -> RunResult:
        s = self.settings
        check_out_root(s.input_root, s.out_root, s.exclude)  # before anything is created
        s.out_root.mkdir(parents=True, exist_ok=True)
        with RunLock(s.out_root, s.shard, argv=self.argv), self.executor as executor:
            manifest = manifest_path(s.out_root, s.shard, s.manifest)
            manifest.parent.mkdir(parents=True, exist_ok=True)
            run_id = new_run_id()
            model = executor.start(s, manifest, run_id)
            plan = plan_run(s, model.ref)
            self.on_plan(plan)
            ctx = resolve_context(plan, model, run_id)
            result = self.result
            result.counts["skipped"] = len(plan.skip) + len(plan.not_images)
            result.previously_failed = sum(1 for _, why in plan.skip if why is Reason.FAILED)
            t0 = time.perf_counter()
            result.stale_temps = remove_stale_temps((job.output for job, _ in plan.todo + plan.skip), keep_owners=live_owners(s.out_root))
            with ManifestWriter(plan.manifest) as writer:
                self._writer = writer
                write_run_start(writer, plan, ctx, self.argv)
                run_phase(lambda: executor.execute(ctx, plan.todo, self.emit, self.stop), result, self.stop, writer, run_id, t0, self._manifest_failed)
            executor.finished(plan.manifest, run_id, complete=result.left >= 0 and not result.manifest_error)
            result.lost = getattr(executor, "lost", None)
        if s.report:
            from colorize_cli.report.sheet import write_report  # noqa: PLC0415

            write_report(s.out_root, plan.manifest, input_root=s.input_root)
        return result

    def emit(self, rec: FileRecord) -> None:
        """Append one file's record, count it, tell the caller. Called from any thread."""
        try:
            self._writer.write(rec)
        except OSError as err:  # no record means no resume: stop rather than go on blind
            with self._tally_lock:
                self._manifest_failed(err)
        with self._tally_lock:
            self._tally(rec)
        self.on_file(rec)

    def _manifest_failed(self, err: OSError) -> None:
        result = self.result
        result.manifest_error = result.manifest_error or f"cannot append to the manifest: {describe_failure(err)[1]}"
        if is_disk_full(err):
            result.disk_full = True
        self.stop.set("disk full" if result.disk_full else "manifest not writable")

    def _tally(self, rec: FileRecord) -> None:
        result = self.result
        result.counts[rec.status] += 1
        if rec.status == "failed":
            kind = rec.failure_kind or Kind.INTERNAL
            result.failures.append(Failure(rec.input, kind, rec.reason or ""))
            if kind is Kind.DISK_FULL:
                result.disk_full = True
                self.stop.set("disk full")
        elif rec.status == "done" and rec.width and rec.height:
            result.megapixels += rec.width * rec.height / 1e6


def write_run_start(manifest: ManifestWriter, plan: Plan, ctx: RunContext, argv: list[str]) -> None:
    """The run's header and its skipped files' records."""
    manifest.write(run_header(ctx.run_id, ctx.model.name, ctx.model.sha256,
                              {**plan.settings.output_affecting(), "render_size_used": ctx.render_size}, argv))
    for sk in plan.not_images:
        manifest.write(FileRecord(input=sk.rel.as_posix(), status="skipped", reason=sk.reason, run_id=ctx.run_id))
    for job, why in plan.skip:
        if why is not Reason.ALREADY_DONE:  # a done file's record already stands
            manifest.write(FileRecord(input=job.rel.as_posix(), status="skipped", reason=str(why), run_id=ctx.run_id))


def run_phase(work: Callable[[], int], result: RunResult, stop: StopFlag, manifest: ManifestWriter,
              run_id: str, t0: float, manifest_failed: Callable[[OSError], None]) -> None:
    """The running phase: `work` processes the plan and returns how many files it left, under
    the signal rules of interrupts.py; then the run's end record. A second signal
    (KeyboardInterrupt) stops at once, with the count of files left unknown (-1)."""
    with handle_signals(stop):
        stop.phase = "running"
        try:
            result.left = work()
        except KeyboardInterrupt as err:
            stop.set(getattr(err, "signal", "SIGINT"))
            result.left = -1
        # Interrupted means work was left undone: a signal that came after the last file
        # had started changes nothing about what this run did.
        result.interrupted = stop.by_signal and result.left != 0
        result.seconds = time.perf_counter() - t0
        try:
            manifest.write(end_record(run_id, result.counts, result.interrupted))
        except OSError as err:
            manifest_failed(err)
        stop.phase = "finished"


def remove_stale_temps(outputs: Iterable[Path], keep_owners: Collection[str] = ()) -> int:
    """Delete the temp files a killed run (kill -9, power cut) left beside these outputs; returns
    how many. A temp file is removed only when its owner is provably gone: not this process and
    not any run holding a lock on the output folder (``keep_owners``, from the lock files), since
    every writer holds one. Only temps of the given output names (and of their `_pageN` files)
    are looked at. One directory listing per output folder, not one per file."""
    keep = {owner_tag(), *keep_owners}
    names: dict[Path, set[str]] = {}
    for out in outputs:
        names.setdefault(out.parent, set()).add(out.name)
    removed = 0
    for folder, wanted in names.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:  # not created yet, or unreadable: nothing of ours can be there
            continue
        for entry in entries:
            target = temp_target(entry.name)
            if target is not None and (target in wanted or first_page_name(target) in wanted) and temp_owner(entry.name) not in keep:
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
    return removed
