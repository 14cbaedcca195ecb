"""One file through the pipeline: read -> predict -> merge -> write -> record. Pure of engines.

The local executor overlaps these stages across files (reads in threads, network in batches,
merges and writes in threads); a Ray worker calls `process` one file at a time. Both get the
same records for the same files, because both call these functions. A file fails alone: any
error becomes its record (a kind and a reason, see failures.py). Each input is stat'ed, read
and hashed once (fsutil.read_input): the record's size, mtime and sha256 describe the very
bytes colorized.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colorize_cli.discover.find import Job
from colorize_cli.discover.formats import SIXTEEN_BIT
from colorize_cli.failures import FileFailure, Kind, describe_failure
from colorize_cli.inference.predict import Predictor, predict_scans, working_lightness, working_shape
from colorize_cli.io.fsutil import InputBytes, read_input, sha256_file
from colorize_cli.io.meta.provenance import Provenance
from colorize_cli.io.read.scan import decode_scan, input_error
from colorize_cli.io.scanfile import Page, Scan, WriteError, write_pages
from colorize_cli.manifest import FileRecord
from colorize_cli.merge.full_res import colorize_full_res, merge_device
from colorize_cli.run.context import RunContext
from colorize_cli.settings import RunSettings


@dataclass
class Loaded:
    """A file between its stages: read and decoded (or failed), waiting for the network."""

    job: Job
    why: str
    started: float
    scan: Scan | None = None
    lightness: np.ndarray | None = None
    more_lightness: list[np.ndarray] = field(default_factory=list)  # pages 2.. of a multi-page scan
    error: str | None = None
    kind: Kind | None = None  # the failure kind, with `error`
    input: InputBytes | None = None  # the one read of the input (its bytes are dropped once decoded)

    def release(self) -> None:
        """Drop the pixels as soon as a file is finished, so memory stays flat."""
        self.scan = self.lightness = None
        self.more_lightness = []


def out_dtype(scan: Scan, fmt: str, bit_depth: str) -> type:
    sixteen = bit_depth == "16" or (bit_depth == "same" and scan.bit_depth == 16)
    return np.uint16 if sixteen and fmt in SIXTEEN_BIT else np.uint8


class FileProcessor:
    """The stages of one file, for a loaded model and a run's context."""

    def __init__(self, predictor: Predictor, model_name: str, ctx: RunContext, batch_size: int, thumbnails: object | None = None) -> None:
        self.predictor = predictor
        self.model_name = model_name
        self.ctx = ctx
        self.batch_size = batch_size
        self.thumbnails = thumbnails  # report.ThumbnailWriter, when a review sheet is asked for

    # -- stage 1: read -------------------------------------------------------------------------
    def read(self, job: Job, why: str) -> Loaded:
        """One read of the input, decoded, and its working L*; never raises (a bad file fails
        alone: its kind and reason go into the returned item)."""
        item = Loaded(job=job, why=why, started=time.perf_counter())
        render, max_pixels = self.ctx.render_size, self.ctx.settings.runtime.max_pixels
        try:
            item.input = _read_input(job.input, self.ctx.settings)
            item.scan = decode_scan(io.BytesIO(item.input.data), job.input.name, item.input.size, max_pixels)
            item.input = _without_bytes(item.input)
            h, w = item.scan.gray.shape
            item.lightness = working_lightness(item.scan.gray, working_shape(h, w, render))
            item.more_lightness = [working_lightness(p.gray, working_shape(*p.gray.shape, render)) for p in item.scan.more_pages]
        except Exception as err:  # noqa: BLE001 - a bad file fails alone
            item.kind, item.error = describe_failure(err)
            if item.input is not None:
                item.input = _without_bytes(item.input)
        return item

    # -- stage 2: network ------------------------------------------------------------------------
    def predict(self, batch: list[Loaded]) -> list[list[np.ndarray] | FileFailure]:
        """a*b* of every page, or the failure (naming the page), for each scan of a batch."""
        flat = [small for it in batch for small in (it.lightness, *it.more_lightness)]
        step = max(1, self.batch_size)  # a 500-page TIFF is 500 working images: never one network call
        results = [r for at in range(0, len(flat), step)
                   for r in predict_scans(self.predictor, flat[at : at + step], self.ctx.settings.color, self.batch_size)]  # type: ignore[arg-type]
        out: list[list[np.ndarray] | FileFailure] = []
        at = 0
        for it in batch:
            n = 1 + len(it.more_lightness)
            mine, at = results[at : at + n], at + n
            failed = next(((i, r) for i, r in enumerate(mine) if isinstance(r, Exception)), None)
            if failed is None:
                out.append(list(mine))  # type: ignore[arg-type]
            else:
                kind, reason = describe_failure(failed[1])
                out.append(FileFailure(reason if n == 1 else f"page {failed[0] + 1} of {n}: {reason}", kind))
        return out

    # -- stage 3: merge, write, record ---------------------------------------------------------
    def finish(self, item: Loaded, abs_: list[np.ndarray]) -> FileRecord:
        """Colorize and write every page of one scan; a failing page fails the file, named."""
        s = self.ctx.settings
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
        make_output_folder(job.output.parent, s.out_root)
        origin = Provenance(model_name=self.model_name, model_sha256=self.ctx.model.sha256, model_family=self.ctx.model.family,
                            source_name=text_name(job.input.name),
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
        review = None
        if self.thumbnails is not None:  # the output is written: a thumbnail problem is only a note
            try:
                from colorize_cli.report.measures import tile_borders  # noqa: PLC0415

                tiles = tile_borders(item.lightness.shape, s.color.tile_size, s.color.tile_overlap) if item.lightness is not None else None
                review = self.thumbnails.add(job.rel.as_posix(), scan.gray, pages[0].rgb, tiles)  # type: ignore[attr-defined]
            except Exception as err:  # noqa: BLE001
                notes.append(f"no review thumbnail: {describe_failure(err)[1]}")
        ost = os.stat(job.output)
        return self.record(item, "done", None, notes=notes, output_sha256=sha256_file(job.output),
                           output_size=ost.st_size, output_mtime=ost.st_mtime, review=review, pages=len(pages))

    def finish_or_fail(self, item: Loaded, abs_: list[np.ndarray]) -> FileRecord:
        try:
            return self.finish(item, abs_)
        except Exception as err:  # noqa: BLE001 - a bad file fails alone
            return self.failed(item, err)

    def record(self, item: Loaded, status: str, reason: str | None, **extra: object) -> FileRecord:
        """The manifest record of one file; its input fields all come from the one read."""
        job, scan, got = item.job, item.scan, item.input
        fields = dict(
            input=job.rel.as_posix(), status=status, reason=reason,
            output=Path(os.path.relpath(job.output, self.ctx.out_root)).as_posix() if status == "done" else None,
            input_size=got.size if got else None, input_mtime=got.mtime if got else None,
            input_sha256=got.sha256 if got else None,
            width=scan.size[0] if scan else None, height=scan.size[1] if scan else None,
            mode=scan.mode if scan else None, seconds=round(time.perf_counter() - item.started, 3),
            run_id=self.ctx.run_id, settings_key=self.ctx.settings_key,
        )
        return FileRecord(**fields, **extra)  # type: ignore[arg-type]

    def failed(self, item: Loaded, err: BaseException | None = None) -> FileRecord:
        """The record of a file that failed, from an error or from the item's own failure."""
        kind, reason = describe_failure(err) if err is not None else (item.kind or Kind.INTERNAL, item.error or "")
        return self.record(item, "failed", reason, kind=kind)

    # -- one file, start to end -------------------------------------------------------------------
    def process(self, job: Job, why: str) -> FileRecord:
        """One file through every stage, for callers that hand out one file at a time (Ray workers)."""
        item = self.read(job, why)
        try:
            if item.error is not None:
                return self.failed(item)
            ab = self.predict([item])[0]
            if isinstance(ab, Exception):
                return self.failed(item, ab)
            return self.finish_or_fail(item, ab)
        finally:
            item.release()


def _read_input(path: Path, settings: RunSettings | None = None) -> InputBytes:
    """fsutil.read_input, in read_scan's words when it fails: a file deleted or locked since
    discovery fails alone with a reason a person understands. A file rewritten while it was read
    is read once more (a copy that just finished); if it changes again, it fails. The symlink
    policy of the walk holds at the open too (a file swapped for a link since the walk), and no
    file is read whose size alone exceeds what --max-pixels allows (8 bytes a pixel, 64 MiB more)."""
    follow, inside, max_bytes = True, None, None
    if settings is not None:
        follow = settings.follow_symlinks
        inside = None if settings.allow_outside_root else os.path.realpath(settings.input_root)
        max_bytes = settings.runtime.max_pixels * 8 + (64 << 20) if settings.runtime.max_pixels else None
    for attempt in (1, 2):
        try:
            return read_input(path, follow=follow, inside=inside, max_bytes=max_bytes)
        except FileFailure as err:
            if err.kind is not Kind.INPUT_CHANGED or attempt == 2:
                raise
        except OSError as err:
            raise input_error(err, "read error") from None
    raise AssertionError("unreachable")


def text_name(name: str) -> str:
    """A file name as text that can be written as UTF-8 (XMP): a name that is not valid UTF-8
    on disk (a Linux byte name, held by Python as surrogates) keeps each undecodable byte as \\xNN."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def _without_bytes(got: InputBytes) -> InputBytes:
    """The read's description without its bytes, so a decoded scan does not hold them twice."""
    return InputBytes(data=b"", size=got.size, mtime=got.mtime, sha256=got.sha256)


def make_output_folder(folder: Path, out_root: Path) -> None:
    """Create an output's folder; a file standing where a folder must be is named in the reason."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise WriteError(f"output folder blocked: {os.path.relpath(blocker, out_root)} is a file, not a folder") from None
    except PermissionError:
        raise WriteError("output folder not writable") from None
