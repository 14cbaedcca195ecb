"""The batch pipeline: decode pool -> batched network -> finish pool, joined by bounded queues.

    reader threads:  read + hash, decode, working L*  (one read; Pillow decodes without the GIL)
    main thread:     network on batches of tiles      (torch's own threads)
    writer threads:  upsample + merge + encode + write (numpy / Pillow, mostly without the GIL)

At most `in_flight` scans are held between reading and writing, so memory stays flat however
many files a run has. Each file's outcome is appended to the manifest as soon as it is known.
A file fails alone: any error becomes its manifest record (a kind and a reason, see
failures.py) and the run goes on. A full disk stops new files from starting; a signal stops new
files and lets those in flight finish (interrupts.py). Each input is stat'ed, read and hashed once
(fsutil.read_input): the record's size, mtime and sha256 describe the very bytes colorized.
"""

from __future__ import annotations

import errno
import io
import os
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from colorize_cli.discover.find import Job
from colorize_cli.failures import FileFailure, Kind
from colorize_cli.discover.formats import SIXTEEN_BIT
from colorize_cli.io.scanfile import Page, Scan, WriteError, write_pages
from colorize_cli.io.meta.provenance import Provenance
from colorize_cli.io.read.scan import decode_scan, input_error
from colorize_cli.inference.predict import Predictor, predict_scans, working_lightness, working_shape
from colorize_cli.io.fsutil import InputBytes, is_disk_full, owner_tag, read_input, sha256_file, temp_owner, temp_target
from colorize_cli.discover.outnames import first_page_name
from colorize_cli.run.interrupts import StopFlag, handle_signals
from colorize_cli.manifest import FileRecord, ManifestWriter, end_record, live_owners, new_run_id, run_header
from colorize_cli.run.plan import Plan
from colorize_cli.merge.full_res import colorize_full_res, merge_device, warm_up


@dataclass(frozen=True)
class EngineSettings:
    """Scheduling knobs derived from the run settings and the machine."""

    batch_size: int = 8
    readers: int = 2
    writers: int = 2
    in_flight: int = 16
    torch_threads: int = 0  # 0: leave torch's default


@dataclass
class RunResult:
    counts: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0, "skipped": 0})
    seconds: float = 0.0
    megapixels: float = 0.0
    interrupted: bool = False
    disk_full: bool = False
    left: int = 0  # files not started because the run stopped early
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)
    manifest_error: str | None = None  # the manifest could not be appended to; the run stopped
    stale_temps: int = 0  # temp files of a killed earlier run, removed before starting

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.counts["failed"] or self.disk_full or self.manifest_error else 0


@dataclass
class _Loaded:
    job: Job
    why: str
    started: float
    scan: Scan | None = None
    lightness: np.ndarray | None = None
    more_lightness: list[np.ndarray] = field(default_factory=list)  # pages 2.. of a multi-page scan
    error: str | None = None
    kind: Kind | None = None  # the failure kind, with `error`
    input: InputBytes | None = None  # the one read of the input (its bytes are dropped once decoded)


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


def out_dtype(scan: Scan, fmt: str, bit_depth: str) -> type:
    sixteen = bit_depth == "16" or (bit_depth == "same" and scan.bit_depth == 16)
    return np.uint16 if sixteen and fmt in SIXTEEN_BIT else np.uint8


def describe_failure(err: BaseException) -> tuple[Kind, str]:
    """(kind, one-line reason) of an error that failed one file. Our own errors carry the kind
    decided where they were raised; anything else is classified here, once."""
    if isinstance(err, FileFailure):
        return err.kind, str(err)
    if isinstance(err, MemoryError):
        return Kind.TOO_LARGE, "out of memory while processing this image"
    if is_disk_full(err):
        return Kind.DISK_FULL, "disk full" if err.errno == errno.ENOSPC else "disk quota exceeded"
    text = str(err).strip().splitlines()
    return Kind.INTERNAL, f"{type(err).__name__}: {text[0] if text else 'no details'}"


def _describe(err: BaseException) -> str:
    return describe_failure(err)[1]


class Engine:
    """Runs one planned batch. Construct with a loaded model; call `run(plan)`."""

    def __init__(
        self,
        predictor: Predictor,
        model_name: str,
        es: EngineSettings,
        on_file: Callable[[FileRecord], None] = lambda rec: None,
        thumbnails: object | None = None,
    ) -> None:
        self.predictor = predictor
        self.model_name = model_name
        self.es = es
        self.on_file = on_file
        self.thumbnails = thumbnails  # report.ThumbnailWriter, when a review sheet is asked for

    # -- stage 1: read -------------------------------------------------------------------------
    def _read(self, job: Job, why: str, render_size: int, max_pixels: int) -> _Loaded:
        """Stage 1 for one file: one read of the input, decoded; never raises (a bad file fails
        alone: its kind and reason go into the returned item)."""
        item = _Loaded(job=job, why=why, started=time.perf_counter())
        try:
            item.input = _read_input(job.input)
            item.scan = decode_scan(io.BytesIO(item.input.data), job.input.name, item.input.size, max_pixels)
            item.input = _without_bytes(item.input)
            h, w = item.scan.gray.shape
            item.lightness = working_lightness(item.scan.gray, working_shape(h, w, render_size))
            item.more_lightness = [working_lightness(p.gray, working_shape(*p.gray.shape, render_size))
                                   for p in item.scan.more_pages]
        except Exception as err:  # noqa: BLE001 - a bad file fails alone
            item.kind, item.error = describe_failure(err)
            if item.input is not None:
                item.input = _without_bytes(item.input)
        return item

    # -- stage 3: finish -----------------------------------------------------------------------
    def _finish(self, item: _Loaded, abs_: list[np.ndarray], plan: Plan, run_id: str) -> FileRecord:
        """Colorize and write every page of one scan; a failing page fails the file, named."""
        s = plan.settings
        scan, job = item.scan, item.job
        assert scan is not None
        pages: list[Page] = []
        smalls = [item.lightness, *item.more_lightness]
        for i, (page, ab) in enumerate(zip(scan.pages, abs_)):
            try:
                rgb = colorize_full_res(page.gray, ab, s.color.saturation, upsample=s.color.upsample,
                                        out_dtype=out_dtype(page, job.out_fmt, s.output.bit_depth), lightness_small=smalls[i],
                                        device=merge_device(self.predictor.device))
            except Exception as err:  # noqa: BLE001
                if len(abs_) == 1:
                    raise
                kind, reason = describe_failure(err)
                raise WriteError(f"page {i + 1} of {len(abs_)}: {reason}", kind) from err
            pages.append(Page(rgb, page.alpha, page.meta))
        _make_output_folder(job.output.parent, s.out_root)
        origin = Provenance(model_name=self.model_name, model_sha256=plan.model.sha256, source_name=job.input.name,
                            source_sha256=item.input.sha256 if item.input else "")
        notes, _ = write_pages(
            job.output, pages, job.out_fmt, s.output.quality,
            keep_times_from=job.input if s.output.keep_times else None, model_name=self.model_name, origin=origin,
            tiff_compression=s.output.tiff_compression,
        )
        page_notes = [f"page {i + 1}: {n}" for i, p in enumerate(scan.pages[1:], start=1) for n in p.notes]
        notes = list(scan.notes) + page_notes + list(notes)
        if s.output.bit_depth == "16" and job.out_fmt not in SIXTEEN_BIT:
            notes.append(f"written at 8 bits: --bit-depth 16 asked, {job.out_fmt} holds 8 bits a channel")
        rgb = pages[0].rgb
        review = None
        if self.thumbnails is not None:  # the output is written: a thumbnail problem is only a note
            try:
                review = self.thumbnails.add(job.rel.as_posix(), scan.gray, rgb)
            except Exception as err:  # noqa: BLE001
                notes.append(f"no review thumbnail: {_describe(err)}")
        ost = os.stat(job.output)
        return self._record(item, plan, run_id, "done", None, notes=notes, output_sha256=sha256_file(job.output),
                            output_size=ost.st_size, output_mtime=ost.st_mtime, review=review, pages=len(pages))

    def _record(self, item: _Loaded, plan: Plan, run_id: str, status: str, reason: str | None, **extra: object) -> FileRecord:
        """The manifest record of one file; its input fields all come from the one read."""
        job, scan, got = item.job, item.scan, item.input
        fields = dict(
            input=job.rel.as_posix(), status=status, reason=reason,
            output=Path(os.path.relpath(job.output, plan.settings.out_root)).as_posix() if status == "done" else None,
            input_size=got.size if got else None, input_mtime=got.mtime if got else None,
            input_sha256=got.sha256 if got else None,
            width=scan.size[0] if scan else None, height=scan.size[1] if scan else None,
            mode=scan.mode if scan else None, seconds=round(time.perf_counter() - item.started, 3),
            run_id=run_id, settings_key=plan.settings_key,
        )
        return FileRecord(**fields, **extra)  # type: ignore[arg-type]

    # -- one file, start to end -------------------------------------------------------------------
    def process_file(self, job: Job, why: str, plan: Plan, run_id: str, render: int) -> FileRecord:
        """One file through the same stages `run` overlaps across files (read, network, finish),
        with the same failure records: for callers that hand out one file at a time (Ray workers)."""
        item = self._read(job, why, render, plan.settings.runtime.max_pixels)
        try:
            if item.error is not None:
                return self._failed(item, plan, run_id)
            ab = self._predict([item], plan.settings)[0]
            if isinstance(ab, Exception):
                return self._failed(item, plan, run_id, ab)
            try:
                return self._finish(item, ab, plan, run_id)
            except Exception as err:  # noqa: BLE001 - a bad file fails alone
                return self._failed(item, plan, run_id, err)
        finally:
            item.scan = item.lightness = None
            item.more_lightness = []

    # -- the run ---------------------------------------------------------------------------------
    def _failed(self, item: _Loaded, plan: Plan, run_id: str, err: BaseException | None = None) -> FileRecord:
        """The record of a file that failed, from an error or from the item's own failure."""
        kind, reason = describe_failure(err) if err is not None else (item.kind or Kind.INTERNAL, item.error or "")
        return self._record(item, plan, run_id, "failed", reason, kind=kind)

    def run(self, plan: Plan, argv: list[str], stop: StopFlag | None = None) -> RunResult:
        s = plan.settings
        stop = StopFlag() if stop is None else stop  # a StopFlag is falsy until set
        result = RunResult()
        result.counts["skipped"] = len(plan.skip) + len(plan.not_images)
        render = s.color.render_size or self.predictor.model.default_render_size
        run_id = new_run_id()
        t0 = time.perf_counter()
        plan.manifest.parent.mkdir(parents=True, exist_ok=True)
        result.stale_temps = remove_stale_temps((job.output for job, _ in plan.todo + plan.skip),
                                                keep_owners=live_owners(s.out_root))
        with ManifestWriter(plan.manifest) as manifest:
            write_run_start(manifest, plan, run_id, render, argv)

            tally = threading.Lock()

            def emit(rec: FileRecord) -> None:
                try:
                    manifest.write(rec)
                except OSError as err:  # no record means no resume: stop rather than go on blind
                    with tally:
                        self._manifest_failed(result, err, stop)
                with tally:
                    self._tally(result, rec, stop)
                self.on_file(rec)

            run_phase(lambda: self._pipeline(plan, run_id, render, stop, emit), result, stop, manifest, run_id, t0)
        return result

    @staticmethod
    def _manifest_failed(result: RunResult, err: OSError, stop: StopFlag) -> None:
        reason = _describe(err)
        result.manifest_error = result.manifest_error or f"cannot append to the manifest: {reason}"
        if is_disk_full(err):
            result.disk_full = True
        stop.set("disk full" if result.disk_full else "manifest not writable")

    @staticmethod
    def _tally(result: RunResult, rec: FileRecord, stop: StopFlag) -> None:
        result.counts[rec.status] += 1
        if rec.status == "failed":
            result.failures.append((rec.input, rec.reason or ""))
            if rec.kind == Kind.DISK_FULL.value:
                result.disk_full = True
                stop.set("disk full")
        elif rec.status == "done" and rec.width and rec.height:
            result.megapixels += rec.width * rec.height / 1e6

    def _pipeline(self, plan: Plan, run_id: str, render: int, stop: StopFlag, emit: Callable[[FileRecord], None]) -> int:
        s = plan.settings
        es = self.es
        slots = threading.Semaphore(es.in_flight)
        loaded: queue.Queue = queue.Queue()
        todo = list(plan.todo)
        started = 0
        readers = ThreadPoolExecutor(es.readers, thread_name_prefix="read")
        writers = ThreadPoolExecutor(es.writers, thread_name_prefix="write")
        if merge_device(self.predictor.device) is None and todo:
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
                        fut = readers.submit(self._read, job, why, render, s.runtime.max_pixels)
                        fut.add_done_callback(lambda f: loaded.put(f.result()))
                        continue
                    slots.release()
                break
            readers.shutdown(wait=True)  # every read's callback has run: no list of futures (and scans) kept
            loaded.put(None)

        def finish(item: _Loaded, ab: np.ndarray) -> None:
            try:
                rec = self._finish(item, ab, plan, run_id)
            except Exception as err:  # noqa: BLE001
                rec = self._failed(item, plan, run_id, err)
            finally:
                item.scan = item.lightness = None
                item.more_lightness = []
                slots.release()
            emit(rec)

        feeder = threading.Thread(target=feed, name="feed", daemon=True)
        feeder.start()
        in_reading = True
        try:
            while in_reading:
                batch: list[_Loaded] = []
                item = loaded.get()
                while True:
                    if item is None:
                        in_reading = False
                        break
                    if item.error is not None:
                        emit(self._failed(item, plan, run_id))
                        slots.release()
                    else:
                        batch.append(item)
                    if len(batch) >= es.batch_size:
                        break
                    try:
                        item = loaded.get_nowait()
                    except queue.Empty:
                        break
                for it, ab in zip(batch, self._predict(batch, s)):
                    if isinstance(ab, Exception):
                        emit(self._failed(it, plan, run_id, ab))
                        it.scan = it.lightness = None
                        it.more_lightness = []
                        slots.release()
                    else:
                        writers.submit(finish, it, ab)
        finally:
            readers.shutdown(wait=True)
            writers.shutdown(wait=True)
        return len(todo) - started

    def _predict(self, batch: list[_Loaded], s) -> list[list[np.ndarray] | FileFailure]:
        """a*b* of every page, or the failure (naming the page), for each scan of a batch."""
        flat = [small for it in batch for small in (it.lightness, *it.more_lightness)]
        results = predict_scans(self.predictor, flat, s.color, self.es.batch_size)  # type: ignore[misc]
        out: list[list[np.ndarray] | FileFailure] = []
        at = 0
        for it in batch:
            n = 1 + len(it.more_lightness)
            mine, at = results[at : at + n], at + n
            failed = next(((i, r) for i, r in enumerate(mine) if isinstance(r, Exception)), None)
            if failed is None:
                out.append(list(mine))
            else:
                kind, reason = describe_failure(failed[1])
                out.append(FileFailure(reason if n == 1 else f"page {failed[0] + 1} of {n}: {reason}", kind))
        return out


def write_run_start(manifest: ManifestWriter, plan: Plan, run_id: str, render: int, argv: list[str]) -> None:
    """The run's header and its skipped files' records: the same for every engine."""
    manifest.write(run_header(run_id, plan.model.name, plan.model.sha256,
                              {**plan.settings.output_affecting(), "render_size_used": render}, argv))
    for sk in plan.not_images:
        manifest.write(FileRecord(input=sk.rel.as_posix(), status="skipped", reason=sk.reason, run_id=run_id))
    for job, why in plan.skip:
        if why != "already done":  # a done file's record already stands
            manifest.write(FileRecord(input=job.rel.as_posix(), status="skipped", reason=why, run_id=run_id))


def run_phase(work: Callable[[], int], result: RunResult, stop: StopFlag, manifest: ManifestWriter,
              run_id: str, t0: float) -> None:
    """The running phase both engines share: `work` processes the plan and returns how many
    files it left, under the signal rules of interrupts.py; then the run's end record. A second
    signal (KeyboardInterrupt) stops at once, with the count of files left unknown (-1)."""
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
            Engine._manifest_failed(result, err, stop)
        stop.phase = "finished"


def remove_stale_temps(outputs: Iterable[Path], keep_owners: Collection[str] = ()) -> int:
    """Delete the temp files a killed run (kill -9, power cut) left beside these outputs; returns
    how many. A temp file is removed only when its owner is provably gone: not this process and
    not any run holding a lock on the output folder (``keep_owners``, from the lock files), since
    every writer holds one. Only temps of the given output names (and of their `_pageN` files)
    are looked at. One directory
    listing per output folder, not one per file."""
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


def _read_input(path: Path) -> InputBytes:
    """fsutil.read_input, in read_scan's words when it fails: a file deleted or locked since
    discovery fails alone with a reason a person understands. A file rewritten while it was read
    is read once more (a copy that just finished); if it changes again, it fails."""
    for attempt in (1, 2):
        try:
            return read_input(path)
        except FileFailure as err:
            if err.kind is not Kind.INPUT_CHANGED or attempt == 2:
                raise
        except OSError as err:
            raise input_error(err, "read error") from None
    raise AssertionError("unreachable")


def _without_bytes(got: InputBytes) -> InputBytes:
    """The read's description without its bytes, so a decoded scan does not hold them twice."""
    return InputBytes(data=b"", size=got.size, mtime=got.mtime, sha256=got.sha256)


def _make_output_folder(folder: Path, out_root: Path) -> None:
    """Create an output's folder; a file standing where a folder must be is named in the reason."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise WriteError(f"output folder blocked: {os.path.relpath(blocker, out_root)} is a file, not a folder") from None
    except PermissionError:
        raise WriteError("output folder not writable") from None

