"""The review sheet: one static HTML page, ``<out>/report.html``, to look at a run's results.

Why: after a run over thousands of scans an archivist wants to *look* at what the network did and
find the few results that need attention, not read logs. The engine keeps two thumbnails and a
few measures per scan while it runs (:mod:`.thumbnails`, :mod:`.measures`); :func:`write_report`
turns the manifest into the page, rendering ``templates/report.html.j2`` with Jinja2
(autoescaped, so no name can become markup).

The page is one self-contained file (inline CSS and vanilla JS, no network, no fonts to fetch) so
it opens from a USB disk on an offline reading-room PC. Rows are embedded as one JSON array and
rendered a page at a time in the browser (a grid of 240 results, the default past 25 files, or a
list of 100 rows), so a 50,000-file run opens as fast as a 100-file one. Names are never pasted
into HTML: the JSON is escaped for the script element and the page sets them with
``textContent``. Clicking a result (Enter in the grid) opens the original and the result side by
side at full size, through relative ``file:`` links to the input and output folders (nothing is
copied). Results are marked rejected or accepted with one key; the marks stay in the browser and
"Save reject list" downloads the rejected paths for ``colorize-dir --only-from``.
"""

from __future__ import annotations

import json
import logging
import os
import stat as stat_module
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from colorize_cli import __version__
from colorize_cli.discover.relpath import within
from colorize_cli.io.fsutil import atomic_output
from colorize_cli.manifest import FileRecord, ResumeIndex, read_manifest, utc_now_iso
from colorize_cli.report.measures import ReviewThresholds, finite, look_flags
from colorize_cli.report.thumbnails import COLOR_SUFFIX, ORIGINAL_SUFFIX, THUMBS_DIR, thumb_key

log = logging.getLogger("colorize_cli.report")
REPORT_NAME = "report.html"
TEMPLATE = "report.html.j2"
PAGE_SIZE = 100
GRID_PAGE_SIZE = 240  # cells per page of the grid view (30 rows of 8 at 1400 px)
GRID_FROM = 25  # runs with more files than this open in the grid view

# Column order of each embedded row; the page looks columns up by name.
ROW_COLUMNS = (
    "rel", "status", "seconds", "reason", "score", "flags",
    "thumb", "has", "colorfulness", "flat_chroma", "output", "width", "height", "notes",
    "kinds", "kind",
)  # fmt: skip


@dataclass(frozen=True)
class _Run:
    """One run of the manifest: its header and, if it finished, its end record."""

    header: Mapping[str, Any]
    end: Mapping[str, Any] | None

    @property
    def seconds(self) -> float | None:
        if self.end is None:
            return None
        start, finish = _parse_time(self.header.get("started")), _parse_time(self.end.get("finished"))
        if start is None or finish is None:
            return None
        return max(0.0, (finish - start).total_seconds())

    @property
    def processed(self) -> int:
        counts = self.end.get("counts") if self.end else None
        if not isinstance(counts, Mapping):
            return 0
        return sum(int(v) for k, v in counts.items() if k in ("done", "failed") and finite(v))


def write_report(
    out_root: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    *,
    input_root: str | os.PathLike[str] | None = None,
    thresholds: ReviewThresholds = ReviewThresholds(),
    page_size: int = PAGE_SIZE,
) -> Path:
    """Write ``<out_root>/report.html`` from a manifest and the thumbnails beside it; return its path.

    One row per input (its current state, as resume sees it). ``input_root`` is where the
    originals are, for the full-size view; by default the last run header's ``input_root``.
    Written to a temp file and os.replace'd, so a browser never opens half a page and a report
    can be rebuilt during a run.
    """
    out_root, manifest = Path(out_root), Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest}")
    records = list(read_manifest(manifest))
    runs = _runs(records)
    index = ResumeIndex(records)
    rows = _rows(index.records(), _present_thumbs(out_root / THUMBS_DIR), thresholds, out_root)
    recorded = input_root is None
    if input_root is None and runs:
        input_root = _recorded_input_root(runs[-1].header)
    if input_root is not None and not _originals_stay_inside(Path(input_root), index.records(), recorded):
        input_root = None
    try:
        context = _summary(runs, rows, manifest)
    except (TypeError, ValueError, OverflowError) as err:  # a hand-edited run or end record
        log.warning("report: run records ignored (%s)", err)
        context = _summary([], rows, manifest)
    context["title"] = f"Review: {out_root.resolve().name or out_root}"
    context["data"] = Markup(script_json({
        "cols": ROW_COLUMNS,
        "rows": rows,
        "pageSize": max(1, int(page_size)),
        "gridPageSize": GRID_PAGE_SIZE,
        "gridFrom": GRID_FROM,
        "runs": sorted({str(run.header.get("run_id", "")) for run in runs}),
        "thumbs": THUMBS_DIR.as_posix() + "/",
        "suffix": [ORIGINAL_SUFFIX, COLOR_SUFFIX],
        "originals": None if input_root is None else folder_href(input_root, out_root),
    }))
    page = _environment().get_template(TEMPLATE).render(context)
    dest = out_root / REPORT_NAME
    _atomic_write(dest, page.encode("utf-8"))
    return dest


def _environment() -> Environment:
    """Autoescape on for every value; ``finalize`` turns lone surrogates (undecodable Linux
    names) into '?' so they can be written as UTF-8."""
    return Environment(
        loader=PackageLoader("colorize_cli.report", "templates"),
        autoescape=True,
        finalize=lambda v: v if isinstance(v, Markup) else str(v).encode("utf-8", "replace").decode("utf-8"),
        keep_trailing_newline=True,
    )


def folder_href(folder: str | os.PathLike[str], report_dir: str | os.PathLike[str]) -> str:
    """A link to ``folder`` from a page in ``report_dir``, ending in "/": relative when it can be,
    so the pair still works when both folders move together (a USB disk), else a file: URI."""
    target, here = os.path.abspath(folder), os.path.abspath(report_dir)
    try:
        rel = os.path.relpath(target, here)
    except ValueError:  # another drive on Windows
        return Path(target).as_uri().rstrip("/") + "/"
    parts = [] if rel == os.curdir else rel.replace(os.sep, "/").split("/")
    return "".join(quote(p, safe="", errors="surrogateescape") + "/" for p in parts)


def _recorded_input_root(header: Mapping[str, Any]) -> str | None:
    settings = header.get("settings")
    for value in (header.get("input_root"), settings.get("input_root") if isinstance(settings, Mapping) else None):
        if isinstance(value, str) and value:
            return value
    return None


def _runs(records: Iterable[Mapping[str, Any]]) -> list[_Run]:
    headers: list[Mapping[str, Any]] = []
    ends: dict[Any, Mapping[str, Any]] = {}
    for rec in records:
        if rec.get("type") == "run":
            headers.append(rec)
        elif rec.get("type") == "end":
            ends[rec.get("run_id")] = rec
    return [_Run(h, ends.get(h.get("run_id"))) for h in headers]


def _present_thumbs(directory: Path) -> set[str]:
    """Names in the thumbs folder, listed once: 100,000 stat() calls would cost more."""
    try:
        with os.scandir(directory) as entries:
            return {entry.name for entry in entries}
    except FileNotFoundError:
        return set()


def _originals_stay_inside(root: Path, records: Iterable[FileRecord], recorded: bool) -> bool:
    """Whether the page may link the originals under ``root``: every original there must resolve
    (symlinks followed) inside ``root``; under a folder the manifest names (not the user), each must
    also be the file the manifest describes (same size and mtime), or a hand-edited header could
    make the page link any file of the machine ("/etc" and "passwd")."""
    real = os.path.realpath(root)
    for rec in records:
        path = os.path.join(root, rec.input)
        if not os.path.lexists(path):
            continue  # a dead link opens nothing
        target = os.path.realpath(path)
        if not within(target, real):
            log.warning("report: originals not linked: %s leads outside %s", rec.input, root)
            return False
        if recorded:
            try:
                st = os.stat(target)
            except OSError:
                continue
            if not stat_module.S_ISREG(st.st_mode) or (rec.input_size, rec.input_mtime) != (st.st_size, st.st_mtime):
                log.warning("report: originals not linked: %s under the recorded input folder %s is not the file "
                            "the manifest describes (pass --input INPUT)", rec.input, root)
                return False
    return True


def _output_inside(out_root: Path | None, output: str | None) -> str:
    """A record's output, linked only when it resolves (symlinks followed) inside the output folder."""
    if not output or out_root is None:
        return str(output or "")
    path = os.path.join(out_root, output)
    if os.path.lexists(path) and not within(os.path.realpath(path), os.path.realpath(out_root)):
        log.warning("report: output of %s not linked: it leads outside %s", output, out_root)
        return ""
    return str(output)


def _rows(
    records: Iterable[FileRecord], present: set[str], thresholds: ReviewThresholds, out_root: Path | None = None
) -> list[list[Any]]:
    rows = []
    for rec in records:
        try:
            rows.append(_row(rec, present, thresholds, out_root))
        except (TypeError, ValueError, OverflowError) as err:  # a hand-edited record: left out, not fatal
            log.warning("report: record of %r ignored (%s)", rec.input, err)
    return rows


def _row(rec: FileRecord, present: set[str], thresholds: ReviewThresholds, out_root: Path | None) -> list[Any]:
    rel = str(rec.input)
    key = thumb_key(rel)
    has = (1 if key + ORIGINAL_SUFFIX in present else 0) | (
        2 if key + COLOR_SUFFIX in present else 0
    )  # bit 1: original thumbnail, bit 2: colorized
    review = rec.review if isinstance(rec.review, Mapping) else {}
    flags = look_flags(review, thresholds) if rec.status == "done" else []
    score = sum(f.score for f in flags)
    return [
        rel,
        rec.status,
        _rounded(rec.seconds, 3),
        str(rec.reason or ""),
        round(score, 3),
        [f.reason for f in flags],
        key if has else "",
        has,
        _rounded(review.get("colorfulness"), 1),
        _rounded(review.get("flat_chroma"), 1),
        _output_inside(out_root, rec.output),
        rec.width if isinstance(rec.width, int) else None,
        rec.height if isinstance(rec.height, int) else None,
        [str(n) for n in rec.notes] if isinstance(rec.notes, list) else [],
        [f.kind for f in flags],  # short names of the flags, for the grid's badges
        rec.failure_kind.value if rec.failure_kind else "",  # a failure's kind (failures.Kind)
    ]  # fmt: skip


def _rounded(value: Any, digits: int) -> float | None:
    number = finite(value)
    return None if number is None else round(number, digits)


def _summary(runs: list[_Run], rows: list[list[Any]], manifest: Path) -> dict[str, Any]:
    """What the top of the page shows (no JS needed there); the template escapes every value."""
    counts = dict.fromkeys(("done", "failed", "skipped"), 0)
    for row in rows:
        counts[row[1]] = counts.get(row[1], 0) + 1
    flagged = sum(1 for row in rows if row[4] > 0)
    timed = [run for run in runs if run.seconds is not None]
    total = sum(run.seconds or 0.0 for run in timed)
    processed = sum(run.processed for run in timed)
    last = runs[-1].header if runs else {}
    settings = last.get("settings")
    return {
        "cards": [{"name": name, "value": f"{value:,}"} for name, value in
                  (("done", counts["done"]), ("failed", counts["failed"]), ("skipped", counts["skipped"]), ("flagged", flagged))],
        "rate": f"{processed / total:.2f} files/s" if total > 0 else "n/a",
        "total_time": _duration(total) if timed else "n/a",
        "facts": [
            ("Model", str(last.get("model", "unknown"))),
            ("Model sha256", str(last.get("model_sha256", "unknown"))),
            ("Tool version", str(last.get("tool_version", "unknown"))),
            ("Manifest", manifest.name),
            ("Report written", f"{utc_now_iso()} by colorize-cli {__version__}"),
        ],
        "settings": _flatten(settings) if isinstance(settings, Mapping) else [],
        "runs": [_run_cells(run) for run in runs],
    }


def _run_cells(run: _Run) -> list[Any]:
    end_counts = run.end.get("counts") if run.end else None
    end_counts = end_counts if isinstance(end_counts, Mapping) else {}
    if run.end is None:
        finished = "no end record (killed?)"
    elif run.end.get("interrupted"):
        finished = f"{run.end.get('finished', '?')} (interrupted)"
    else:
        finished = str(run.end.get("finished", "?"))
    return [
        run.header.get("run_id", "?"),
        run.header.get("started", "?"),
        finished,
        _duration(run.seconds) if run.seconds is not None else "n/a",
        end_counts.get("done", ""),
        end_counts.get("failed", ""),
        end_counts.get("skipped", ""),
        run.header.get("model", "?"),
    ]


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.extend(_flatten(value, name + "."))
        else:
            items.append((name, json.dumps(value, default=str, ensure_ascii=False)))
    return items


def _parse_time(value: Any) -> datetime | None:
    """An aware datetime; a time written without a zone (a hand edit) is taken as UTC."""
    try:
        when = datetime.fromisoformat(str(value))
    except (ValueError, OverflowError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element: ASCII only, and <, >, & as \\u escapes, so no
    name can close the element ("</script>") or open a comment ("<!--"). Still valid JSON."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _atomic_write(dest: Path, payload: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dest) as f:
        f.write(payload)
