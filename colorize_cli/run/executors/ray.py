"""`colorize-dir --engine ray`: the same per-file work as the local engine, on a Ray cluster.

    driver (this process)                         workers (Ray actors, one model each)
    plan -> bounded queue of files  --file-->     FileProcessor.process: read, network, merge,
    manifest <- one record per file <--record--   write, metadata; a receipt per file

Plain actors and `ray.wait`, not Ray Data's `map_batches`: the driver must know which file a dead
worker was holding, so that retries stay bounded and a file that kills its worker every time
ends `failed` instead of being retried forever or silently dropped. Each call carries one file,
so each record comes back (and is appended to the manifest) as soon as its file is finished, and
a lost call names its file. A worker holds at most `_DEPTH` files; the driver pulls from the plan
only when a worker has room (backpressure), so memory does not grow with the size of the run.

Crash handling: when a worker dies, the files it held come back to the queue. Files that were
lost together are retried one at a time ("solo": a worker holding a solo file gets nothing
else), so the next crash names its culprit; a solo file whose worker dies more than
`max_retries` times ends failed: "out of memory" when Ray's memory monitor stopped the worker
(the worker table says so), "crashed" (CRASH_REASON, kept by a plain rerun) when it killed its
worker at least twice, else "internal" (a single death, as with --max-retries 0, may have been a
kill from outside: a plain rerun tries it again).

A lost cluster ends the run: a worker whose restart waits for room is not ready yet, never lost,
so the driver watches for progress instead. Every record, every worker that becomes ready and
every answer to a ping (sent every few seconds to each worker, answered by a thread of its own
while a file is processed) is progress; after `lost_after` seconds without any, every worker, its
node or the head is gone: the run stops, files without a record count as not started, and the
receipts are kept for the rerun. Ray's driver gives up on a lost head (GCS) after its own
reconnect timeout by ending the process; that timeout is raised above `lost_after` so that the
run ends in its own words. A second signal stops at once even while the driver waits in Ray,
whose waits swallow the KeyboardInterrupt (interrupts.StopFlag.check).

The driver is the only manifest writer. Workers also append each record to a receipt file beside
the manifest (`.<manifest>.receipts/<run_id>/`), removed when the driver has them all; if the
driver dies first, the next run adopts the receipts' done records before planning, so outputs
finished after the driver's death (atomic renames: whole or absent) are not redone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colorize_cli.discover.find import Job
from colorize_cli.failures import Kind
from colorize_cli.manifest import FileRecord, Reason
from colorize_cli.models.paths import DEFAULT_WEIGHTS
from colorize_cli.run.context import ModelInfo, RunContext
from colorize_cli.run.executors.ray_cluster import RayEngineError, cause, connect, exit_type, head_answers, import_ray, worker_count
from colorize_cli.run.executors.ray_worker import ColorizeWorker
from colorize_cli.run.executors.receipts import adopt_receipts, receipts_root, remove_if_empty
from colorize_cli.run.interrupts import check_signals
from colorize_cli.run.plan import ModelRef
from colorize_cli.settings import RunSettings

CRASH_REASON = "worker crashed while processing this file"
OOM_REASON = "out of memory while processing this image (Ray's memory monitor stopped its worker)"
DIED_ONCE_REASON = "worker died while processing this file (killed from outside, or a crash); not tried again (--max-retries 0)"
_WATCH = "watch"  # the workers' concurrency group for pings: answered while a file is processed
_PING_EVERY = 5.0  # s between pings to one worker (at most a quarter of lost_after)
_DEPTH = 2  # files queued on one worker: the next file is there when the current one ends
_MAX_FAILED_STARTS = 3  # a restarted worker whose ready() fails this often in a row is given up


def parse_workers(text: str) -> tuple[int, int]:
    """'N' or 'N-M' (least-most, for autoscaling clusters) -> (least, most)."""
    least, _, most = text.partition("-")
    try:
        lo, hi = int(least), int(most or least)
    except ValueError:
        raise ValueError(f"--workers must be N or N-M, not {text!r}") from None
    if not 1 <= lo <= hi:
        raise ValueError(f"--workers {text}: need 1 <= N <= M")
    return lo, hi


# --------------------------------------------------------------------------- the driver


@dataclass
class _Task:
    job: Job
    why: Reason
    crashes: int = 0
    solo: bool = False  # lost with other files: retried alone so a crash names its file
    died_on: str = ""  # the Ray worker id of the last worker that died holding this file alone


@dataclass
class _Slot:
    handle: Any
    ready_ref: Any | None  # pending ready() call; None once ready
    held: list[tuple[Any, _Task]]  # (object ref, task) in submission order
    started: bool = False  # its model has loaded at least once
    failed_starts: int = 0  # restarts in a row that did not come back
    ask_at: float | None = None  # when to ask a restarting worker again whether it is ready
    worker_id: str = ""  # Ray's id of the worker process now behind the handle (from ready())
    ping_ref: Any | None = None  # pending ping
    ping_at: float = 0.0  # when the last ping was sent

    @property
    def ready(self) -> bool:
        return self.started and self.ready_ref is None and self.ask_at is None


class RayDriver:
    """Runs a colorize-dir over a cluster of ColorizeWorker actors; see the module docstring."""

    def __init__(self, ray: Any, settings: RunSettings) -> None:
        self.ray = ray
        self.settings = settings
        self.rs = settings.ray
        self.slots: list[_Slot] = []
        self.queue: deque[_Task] = deque()  # retries, sent before new files
        self.lost: str | None = None  # why the run stopped early, when every worker is gone
        self.progress_at = time.monotonic()  # the last record, worker ready or ping answered
        self.ping_every = max(0.5, min(_PING_EVERY, self.rs.lost_after / 4))

    # -- workers -----------------------------------------------------------------------------------
    def start_workers(self, manifest: Path, run_id: str) -> dict:
        """Start the workers; wait for the least number of them; return the first one's model info."""
        least, most = worker_count(self.ray, self.rs)
        actor = self.ray.remote(concurrency_groups={_WATCH: 1})(ColorizeWorker).options(
            num_cpus=self.rs.cpus_per_worker, num_gpus=self.rs.gpus_per_worker,
            max_restarts=-1, max_task_retries=0,  # restarts are free; file retries are counted here
        )
        threads = max(1, round(self.rs.cpus_per_worker))
        for _ in range(most):
            handle = actor.remote(self.settings, str(manifest), run_id, threads)
            self.slots.append(_Slot(handle, handle.ready.remote(), []))
        info: dict | None = None
        waited = time.monotonic()
        while sum(s.ready for s in self.slots) < least:
            got = self._poll_ready(timeout=1.0)
            check_signals()  # Ray's wait swallows a signal's KeyboardInterrupt
            info = info or got
            if not self.slots:
                raise RayEngineError("no worker could start")
            if time.monotonic() - waited > 60:
                logging.getLogger(__name__).warning("waiting for the cluster to fit %d worker(s)", least)
                waited = time.monotonic()
        if info is None:
            info = self.ray.get(self.slots[0].handle.ready.remote())
        return info

    def _poll_ready(self, timeout: float) -> dict | None:
        """Mark workers whose model has loaded; a worker that cannot load it is an error."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.ask_at is not None and now >= slot.ask_at:
                slot.ready_ref, slot.ask_at = slot.handle.ready.remote(), None
        pending = [s.ready_ref for s in self.slots if s.ready_ref is not None]
        if not pending:
            time.sleep(min(timeout, 0.1))
            return None
        done, _ = self.ray.wait(pending, num_returns=len(pending), timeout=timeout)
        info = None
        for slot in [s for s in self.slots if s.ready_ref in done]:
            try:
                info = self.ray.get(slot.ready_ref)
            except self.ray.exceptions.ActorUnavailableError:  # still restarting: ask again soon
                slot.ready_ref, slot.ask_at = None, time.monotonic() + 0.5
                continue
            except self.ray.exceptions.RayActorError as e:
                if not slot.started:  # the model does not load there: nothing will work
                    raise RayEngineError(f"a worker could not start: {cause(e)}") from None
                slot.failed_starts += 1
                if slot.failed_starts > _MAX_FAILED_STARTS:
                    self.slots.remove(slot)
                    self.ray.kill(slot.handle)
                    if not self.slots:
                        raise RayEngineError(f"every worker is gone: {cause(e)}") from None
                else:
                    slot.ready_ref, slot.ask_at = None, time.monotonic() + 0.5
                continue
            if "error" in info:
                raise RayEngineError(info["error"])
            slot.ready_ref, slot.started, slot.failed_starts = None, True, 0
            slot.worker_id = info.get("worker_id", "")
            self.progress_at = time.monotonic()
        return info

    def close(self) -> None:
        """Stop every worker: ray.kill goes through the head (GCS); __ray_terminate__ goes to
        the worker itself, so workers still alive leave (after the file in hand) and free their
        CPUs and GPUs even when the head is gone."""
        for slot in self.slots:
            for stop in (lambda h: h.__ray_terminate__.remote(), self.ray.kill):
                try:
                    stop(slot.handle)
                except Exception:  # noqa: BLE001 - already gone
                    pass

    # -- the run -----------------------------------------------------------------------------------
    def run(self, todo: Iterator[tuple[Job, Reason]], emit: Callable[[FileRecord], None], stop: Any, ctx: RunContext) -> int:
        """Send every file, emit one record per file; returns how many were never started (or,
        when the cluster was lost, started and never finished)."""
        todo = iter(todo)
        exhausted = False
        self.progress_at = time.monotonic()

        def record(rec: FileRecord) -> None:
            self.progress_at = time.monotonic()
            emit(rec)

        while True:
            if not stop:
                exhausted = self._fill(todo, exhausted, ctx)
            refs = {ref: slot for slot in self.slots for ref, _ in slot.held}
            if not refs:
                if stop or (exhausted and not self.queue):
                    break
                self._check_workers(stop, timeout=0.5)  # nothing can be sent until a worker is ready
            else:
                self._collect(refs, record, ctx)
                self._check_workers(stop, timeout=0)
            stop.check()  # a second signal, whose KeyboardInterrupt Ray's wait swallowed
            self._watch()
            if self._stalled(stop):
                break
        held = sum(len(slot.held) for slot in self.slots)  # only when lost: their records never came
        return len(self.queue) + held + (0 if exhausted else sum(1 for _ in todo))

    def _collect(self, refs: dict[Any, _Slot], emit: Callable[[FileRecord], None], ctx: RunContext) -> None:
        """Wait a moment for a file to finish; emit its record, or handle its worker's death."""
        done, _ = self.ray.wait(list(refs), num_returns=1, timeout=0.5)
        for ref in done:
            slot = refs[ref]
            if all(r is not ref for r, _ in slot.held):
                continue  # dropped with the rest of a dead worker's files
            task = next(t for r, t in slot.held if r is ref)
            try:
                rec = self.ray.get(ref)
            except self.ray.exceptions.RayTaskError as e:  # a bug, not a crash: this file fails alone
                rec = _failed(task, ctx, cause(e))
            except self.ray.exceptions.RayError as e:  # the worker died (or its node): its files come back
                self._worker_died(slot, emit, ctx, oom=isinstance(e, self.ray.exceptions.OutOfMemoryError))
                continue
            slot.held = [(r, t) for r, t in slot.held if r is not ref]
            emit(rec)

    def _watch(self) -> None:
        """Ping every started worker every few seconds; any answer is progress."""
        now = time.monotonic()
        pending = [s.ping_ref for s in self.slots if s.ping_ref is not None]
        done = self.ray.wait(pending, num_returns=len(pending), timeout=0)[0] if pending else []
        for slot in self.slots:
            if slot.ping_ref is not None and slot.ping_ref in done:
                try:
                    self.ray.get(slot.ping_ref)
                    self.progress_at = now
                except self.ray.exceptions.RayError:  # restarting or gone: no answer
                    pass
                slot.ping_ref = None
            if slot.started and slot.ping_ref is None and now - slot.ping_at >= self.ping_every:
                slot.ping_ref, slot.ping_at = slot.handle.ping.options(concurrency_group=_WATCH).remote(), now

    def _stalled(self, stop: Any) -> bool:
        """No progress for lost_after seconds: the cluster is lost; say which part, if Ray can tell."""
        if time.monotonic() - self.progress_at <= self.rs.lost_after:
            return False
        quiet = f"no worker has answered for {self.rs.lost_after:g} s"
        if head_answers(self.ray) is False:
            self.lost = f"the Ray cluster's head (GCS) is not answering; {quiet}"
        else:
            self.lost = f"every Ray worker is lost: {quiet} (their node gone, or no room left to restart them)"
        stop.set("cluster lost")
        return True

    def _check_workers(self, stop: Any, timeout: float) -> None:
        try:
            self._poll_ready(timeout)
        except RayEngineError as e:
            self.lost = str(e)
            stop.set("cluster lost")

    def _fill(self, todo: Iterator[tuple[Job, Reason]], exhausted: bool, ctx: RunContext) -> bool:
        """Give ready workers files up to _DEPTH each; a solo file goes only to an idle worker."""
        for slot in self.slots:
            if not slot.ready:
                continue
            while len(slot.held) < _DEPTH and not any(t.solo for _, t in slot.held):
                if self.queue and self.queue[0].solo:
                    if slot.held:
                        break
                    task = self.queue.popleft()
                elif self.queue:
                    task = self.queue.popleft()
                elif not exhausted:
                    nxt = next(todo, None)
                    if nxt is None:
                        exhausted = True
                        break
                    task = _Task(*nxt)
                else:
                    break
                slot.held.append((slot.handle.process.remote(ctx, task.job, task.why), task))
        return exhausted

    def _worker_died(self, slot: _Slot, emit: Callable[[FileRecord], None], ctx: RunContext, oom: bool = False) -> None:
        """Every file the dead worker held comes back: alone on it, the file is blamed; lost with
        others, each is retried alone. The worker restarts (Ray) and is used once it is ready."""
        lost = [t for _, t in slot.held]
        slot.held = []
        slot.ready_ref, slot.ask_at = slot.handle.ready.remote(), None
        if len(lost) == 1:
            task = lost[0]
            task.crashes += 1
            task.solo = True
            task.died_on = "oom" if oom else slot.worker_id
            if task.crashes > self.rs.max_retries:
                emit(_failed(task, ctx, *self._verdict(task)))
                return
        for task in reversed(lost):
            task.solo = True
            self.queue.appendleft(task)

    def _verdict(self, task: _Task) -> tuple[str, Kind]:
        """Why a file's worker died, as far as Ray knows: its memory monitor, or a crash seen
        more than once; one death alone may have come from outside and is retried by a rerun."""
        if task.died_on == "oom" or exit_type(self.ray, task.died_on) == "NODE_OUT_OF_MEMORY":
            return OOM_REASON, Kind.OUT_OF_MEMORY
        if task.crashes >= 2:
            return CRASH_REASON, Kind.CRASHED
        return DIED_ONCE_REASON, Kind.INTERNAL


def _failed(task: _Task, ctx: RunContext, reason: str, kind: Kind = Kind.INTERNAL) -> FileRecord:
    """The driver's record for a file whose worker gave no record of its own."""
    try:
        st = os.stat(task.job.input)
        size, mtime = st.st_size, st.st_mtime
    except OSError:
        size = mtime = None
    return FileRecord(input=task.job.rel.as_posix(), status="failed", reason=reason, kind=kind.value,
                      input_size=size, input_mtime=mtime, run_id=ctx.run_id, settings_key=ctx.settings_key)


# --------------------------------------------------------------------------- the executor


class RayExecutor:
    """run/session.py's executor on a Ray cluster: connects on start, hands files to workers,
    disconnects on exit. Raises RayEngineError when the cluster cannot be used; when it is
    lost mid-run, ``lost`` says why (every record sent so far is in the manifest)."""

    def __init__(self) -> None:
        self.ray = import_ray()
        self.driver: RayDriver | None = None
        self.lost: str | None = None
        self._stdout = contextlib.redirect_stdout(sys.stderr)

    def __enter__(self) -> RayExecutor:
        self._stdout.__enter__()  # Ray prints cluster events ("a worker died ...") on stdout, which belongs to --json
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.driver is not None:
                self.driver.close()
            if self.ray.is_initialized():
                self.ray.shutdown()
        finally:
            self._stdout.__exit__(None, None, None)

    def start(self, settings: RunSettings, manifest: Path, run_id: str) -> ModelInfo:
        connect(self.ray, settings.ray)
        self.driver = RayDriver(self.ray, settings)
        info = self.driver.start_workers(manifest, run_id)
        adopt_receipts(manifest)  # before planning: outputs finished after an earlier driver died are not redone
        return ModelInfo(ModelRef(Path(settings.weights or DEFAULT_WEIGHTS), info["model"], info["sha256"], info["family"]), info["render"])

    def execute(self, ctx: RunContext, todo: Sequence[tuple[Job, Reason]], emit: Callable[[FileRecord], None], stop: Any) -> int:
        assert self.driver is not None, "start() first"
        try:
            return self.driver.run(iter(todo), emit, stop, ctx)
        finally:
            self.lost = self.driver.lost

    def finished(self, manifest: Path, run_id: str, complete: bool) -> None:
        """Receipts are kept until every record they hold is in the manifest: after a lost
        cluster, workers may have finished files whose records never came back."""
        if complete and self.lost is None:
            shutil.rmtree(receipts_root(manifest) / run_id, ignore_errors=True)
            remove_if_empty(receipts_root(manifest))
