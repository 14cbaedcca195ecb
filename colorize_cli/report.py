"""The review sheet: small thumbnails taken during a run, and one static HTML page to look at them.

Why: after a run over thousands of scans an archivist wants to *look* at what the network did and
find the few results that need attention, not read logs. So the engine hands every image to
:class:`ThumbnailWriter` while it is still in memory (no second decode of a 2 GB TIFF later), the
writer keeps two 256 px JPEGs and a few cheap measures of the result, the engine stores the
measures in the manifest record (``FileRecord.review``), and :func:`write_report` turns the
manifest into ``<out>/report.html``.

The page is one self-contained file (inline CSS and vanilla JS, no network, no fonts to fetch) so
it opens from a USB disk on an offline reading-room PC. Rows are embedded as one JSON array and
rendered 100 at a time in the browser, so a 50,000-file run opens as fast as a 100-file one.
Names are never pasted into HTML: the JSON is escaped for the script element and the page sets
them with ``textContent``.

Measures (computed on the thumbnail, so they cost the same for every scan size):

* ``colorfulness`` -- Hasler & Suesstrunk (2003), M = sqrt(s_rg^2 + s_yb^2) + 0.3 sqrt(m_rg^2 + m_yb^2)
  on 8-bit sRGB. Their scale: ~15 slightly, ~33 moderately, ~59 quite, >100 extremely colourful.
  A result near 0 means the network gave up (the output is still gray).
* ``flat_chroma`` -- 90th percentile of CIE C*ab in *large flat areas* of the original (skies,
  walls, paper margins), and ``flat_fraction``, the share of the frame those areas cover.
  Colourization typically fails there by splashing a blotch of strong colour where the scan has no
  texture to explain it; a percentile catches a blotch covering a tenth of the area, which a mean
  would dilute.

:func:`needs_look` turns the stored measures into a score and human reasons when the report is
written, so thresholds can be changed without re-running anything.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from PIL import Image

from colorize_cli import __version__
from colorize_cli.color import gray_to_lightness, rgb_to_lab
from colorize_cli.fsutil import atomic_output
from colorize_cli.manifest import FileRecord, ResumeIndex, read_manifest, utc_now_iso

REPORT_NAME = "report.html"
THUMBS_DIR = PurePath("report", "thumbs")  # relative to the output root (and to report.html)
THUMB_LONG_SIDE = 256
THUMB_QUALITY = 80
PAGE_SIZE = 100
ORIGINAL_SUFFIX = ".o.jpg"
COLOR_SUFFIX = ".c.jpg"

_KEY_CHARS = 32  # hex digits of sha256 kept: 128 bits, collision-free for any real archive
_STRIP_PIXELS = 8_000_000  # pre-reduce big scans in strips of about this many pixels
_FLAT_GRADIENT = 2.0  # L* change per thumbnail pixel below which a pixel counts as flat
_FLAT_RADIUS = 3  # ... and only if its whole 7x7 neighbourhood is flat too ("large" areas)
_FLAT_PERCENTILE = 90.0


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class ReviewThresholds:
    """When a result "needs a look". Defaults follow the Hasler-Suesstrunk scale."""

    gray_below: float = 8.0  # colourfulness below this: the output is nearly gray
    saturated_above: float = 90.0  # colourfulness above this: implausibly saturated for a photo
    flat_chroma_above: float = 35.0  # C*ab; a clear blue sky is about 25-30
    flat_min_fraction: float = 0.05  # flat areas smaller than this share of the frame are ignored


def needs_look(
    review: Mapping[str, Any] | None, thresholds: ReviewThresholds = ReviewThresholds()
) -> tuple[float, list[str]]:
    """(score, reasons) for one result; score 0 means nothing to flag, higher means look first.

    Each tripped rule adds 1 plus how far past its threshold the measure is (relative), so two
    problems outrank one and a grossly gray result outranks a borderline one. Missing or
    malformed measures (an old manifest, a hand edit) flag nothing rather than fail the report.
    """
    if not isinstance(review, Mapping):
        return 0.0, []
    t = thresholds
    score = 0.0
    reasons: list[str] = []
    m = _finite(review.get("colorfulness"))
    if m is not None and m < t.gray_below:
        score += 1.0 + (t.gray_below - m) / t.gray_below
        reasons.append(f"nearly gray (colourfulness {m:.1f} < {t.gray_below:g})")
    if m is not None and m > t.saturated_above:
        score += 1.0 + (m - t.saturated_above) / t.saturated_above
        reasons.append(f"very saturated (colourfulness {m:.1f} > {t.saturated_above:g})")
    chroma = _finite(review.get("flat_chroma"))
    fraction = _finite(review.get("flat_fraction"))
    if (
        chroma is not None
        and fraction is not None
        and fraction >= t.flat_min_fraction
        and chroma > t.flat_chroma_above
    ):
        score += 1.0 + (chroma - t.flat_chroma_above) / t.flat_chroma_above
        reasons.append(
            f"strong colour in flat areas (C* {chroma:.0f} > {t.flat_chroma_above:g} "
            f"over {fraction:.0%} of the frame)"
        )
    return score, reasons


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# --------------------------------------------------------------------------- thumbnails


def thumb_key(rel: str | PurePath) -> str:
    """The thumbnail base name for an input: hex only, so no name can escape the thumbs folder,
    and derived from the manifest's ``input`` string so the report finds it without a lookup."""
    text = rel.as_posix() if isinstance(rel, PurePath) else str(rel)
    # surrogatepass: undecodable Linux file names arrive as lone surrogates and must still hash
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_KEY_CHARS]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """8-bit view of an 8- or 16-bit image: 16-bit keeps its top byte (>> 8), never clamps."""
    if image.dtype.kind == "u" and image.dtype.itemsize == 1:
        return image
    if image.dtype.kind == "u" and image.dtype.itemsize == 2:  # either byte order (TIFF data)
        return (image >> 8).astype(np.uint8)
    raise TypeError(f"thumbnail input must be uint8 or uint16, got {image.dtype}")


def shrink(image: np.ndarray, long_side: int = THUMB_LONG_SIDE) -> np.ndarray:
    """Downscale an (H, W) or (H, W, 3) uint8/uint16 image to at most ``long_side``, as uint8.

    Big scans are first box-reduced by an integer factor with Pillow's ``reduce``, a strip of rows
    at a time, so a 16-bit 20,000 px scan never needs a full-size 8-bit copy; the last step is a
    Lanczos resize from about twice the target size. Small images are not enlarged.
    """
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"thumbnail input must be (H, W) or (H, W, 3), got shape {image.shape}")
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"thumbnail input is empty: shape {image.shape}")
    factor = max(1, max(h, w) // (2 * long_side))
    if factor > 1:
        rows = factor * max(1, _STRIP_PIXELS // (w * factor))
        strips = [
            np.asarray(Image.fromarray(to_uint8(image[top : top + rows])).reduce(factor))
            for top in range(0, h, rows)
        ]
        small = Image.fromarray(np.concatenate(strips, axis=0))
    else:
        small = Image.fromarray(to_uint8(image))
    small.thumbnail((long_side, long_side), Image.Resampling.LANCZOS, reducing_gap=None)
    return np.asarray(small)


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler-Suesstrunk colourfulness M of an 8-bit sRGB image, (H, W, 3)."""
    px = rgb.reshape(-1, 3).astype(np.float64)
    rg = px[:, 0] - px[:, 1]
    yb = 0.5 * (px[:, 0] + px[:, 1]) - px[:, 2]
    spread = math.sqrt(rg.var() + yb.var())
    centre = math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return spread + 0.3 * centre


def flat_chroma(gray: np.ndarray, rgb: np.ndarray) -> tuple[float, float]:
    """(90th percentile of C*ab over large flat areas of ``gray``, share of the frame they cover).

    ``gray`` (H, W) and ``rgb`` (H, W, 3) are 8-bit thumbnails of the same size. Flatness is
    judged on the original's L*, where the scan itself shows no texture that could explain colour.
    """
    lightness = gray_to_lightness(gray.astype(np.float32) / 255.0)
    dy, dx = np.gradient(lightness)
    flat = _erode(np.hypot(dx, dy) < _FLAT_GRADIENT, _FLAT_RADIUS)
    if not flat.any():
        return 0.0, 0.0
    lab = rgb_to_lab(rgb.astype(np.float32) / 255.0)
    chroma = np.hypot(lab[..., 1], lab[..., 2])[flat]
    return float(np.percentile(chroma, _FLAT_PERCENTILE)), float(flat.mean())


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose whole (2r+1)^2 window is set (edge-padded), via a summed-area table."""
    size = 2 * radius + 1
    padded = np.pad(mask, radius, mode="edge").astype(np.int32)
    table = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1), dtype=np.int32)
    table[1:, 1:] = padded.cumsum(0).cumsum(1)
    window = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    return window == size * size


class ThumbnailWriter:
    """Writes the review thumbnails of one run into ``<out>/report/thumbs/``.

    Stateless apart from its settings, so the engine's writer threads can share one. JPEGs appear
    atomically (temp file in the same folder, then os.replace) but are not fsync'ed: a thumbnail
    lost in a power cut costs nothing, an fsync per scan costs real time over 100,000 files.
    """

    def __init__(
        self,
        out_root: str | os.PathLike[str],
        long_side: int = THUMB_LONG_SIDE,
        quality: int = THUMB_QUALITY,
    ) -> None:
        self.directory = Path(out_root) / THUMBS_DIR
        self.long_side = long_side
        self.quality = quality
        self.directory.mkdir(parents=True, exist_ok=True)

    def paths(self, rel: str | PurePath) -> tuple[Path, Path]:
        """(original, colorized) thumbnail paths for an input."""
        key = thumb_key(rel)
        return self.directory / (key + ORIGINAL_SUFFIX), self.directory / (key + COLOR_SUFFIX)

    def add(
        self,
        rel: str | PurePath,
        original_gray: np.ndarray,
        result_rgb: np.ndarray | None,
    ) -> dict[str, float]:
        """Write the thumbnails of one scan; return the measures to store as ``FileRecord.review``.

        ``result_rgb`` may be None (the scan decoded but could not be colorized): only the
        original is kept and no measures are returned.
        """
        if original_gray.ndim != 2:
            raise ValueError(f"original must be a gray (H, W) image, got shape {original_gray.shape}")
        if result_rgb is not None and result_rgb.shape != (*original_gray.shape, 3):
            raise ValueError(
                f"result shape {result_rgb.shape} does not match original {original_gray.shape} "
                "(expected (H, W, 3))"
            )
        orig_path, color_path = self.paths(rel)
        gray = shrink(original_gray, self.long_side)
        rgb = None if result_rgb is None else shrink(result_rgb, self.long_side)
        self._save(gray, orig_path)
        if rgb is None:
            return {}
        self._save(rgb, color_path)
        chroma, fraction = flat_chroma(gray, rgb)
        return {
            "colorfulness": round(colorfulness(rgb), 2),
            "flat_chroma": round(chroma, 2),
            "flat_fraction": round(fraction, 4),
        }

    def _save(self, image: np.ndarray, dest: Path) -> None:
        with atomic_output(dest, durable=False) as f:  # cheap to remake: no fsync
            Image.fromarray(image).save(f, format="JPEG", quality=self.quality)


# --------------------------------------------------------------------------- the page

# Column order of each embedded row; the page looks columns up by name.
ROW_COLUMNS = (
    "rel", "status", "seconds", "reason", "score", "flags",
    "thumb", "has", "colorfulness", "flat_chroma", "output", "width", "height", "notes",
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
        return sum(int(v) for k, v in counts.items() if k in ("done", "failed") and _finite(v))


def write_report(
    out_root: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    *,
    thresholds: ReviewThresholds = ReviewThresholds(),
    page_size: int = PAGE_SIZE,
) -> Path:
    """Write ``<out_root>/report.html`` from a manifest and the thumbnails beside it; return its path.

    One row per input (its current state, as resume sees it). Written to a temp file and
    os.replace'd, so a browser never opens half a page and a report can be rebuilt during a run.
    """
    out_root, manifest = Path(out_root), Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest}")
    records = list(read_manifest(manifest))
    runs = _runs(records)
    index = ResumeIndex(records)
    rows = _rows(index.records(), _present_thumbs(out_root / THUMBS_DIR), thresholds)
    page = _render_page(
        title=f"Review: {out_root.resolve().name or out_root}",
        summary=_summary_html(runs, rows, manifest),
        data={
            "cols": ROW_COLUMNS,
            "rows": rows,
            "pageSize": max(1, int(page_size)),
            "thumbs": THUMBS_DIR.as_posix() + "/",
            "suffix": [ORIGINAL_SUFFIX, COLOR_SUFFIX],
        },
    )
    dest = out_root / REPORT_NAME
    _atomic_write(dest, page.encode("utf-8"))
    return dest


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


def _rows(
    records: Iterable[FileRecord], present: set[str], thresholds: ReviewThresholds
) -> list[list[Any]]:
    rows = []
    for rec in records:
        rel = str(rec.input)
        key = thumb_key(rel)
        has = (1 if key + ORIGINAL_SUFFIX in present else 0) | (
            2 if key + COLOR_SUFFIX in present else 0
        )  # bit 1: original thumbnail, bit 2: colorized
        review = rec.review if isinstance(rec.review, Mapping) else {}
        score, flags = needs_look(review, thresholds) if rec.status == "done" else (0.0, [])
        rows.append([
            rel,
            rec.status,
            _rounded(rec.seconds, 3),
            str(rec.reason or ""),
            round(score, 3),
            flags,
            key if has else "",
            has,
            _rounded(review.get("colorfulness"), 1),
            _rounded(review.get("flat_chroma"), 1),
            str(rec.output or ""),
            rec.width if isinstance(rec.width, int) else None,
            rec.height if isinstance(rec.height, int) else None,
            [str(n) for n in rec.notes] if isinstance(rec.notes, list) else [],
        ])  # fmt: skip
    return rows


def _rounded(value: Any, digits: int) -> float | None:
    number = _finite(value)
    return None if number is None else round(number, digits)


def _summary_html(runs: list[_Run], rows: list[list[Any]], manifest: Path) -> str:
    """The top of the page, rendered here with every value escaped (it needs no JS)."""
    counts = dict.fromkeys(("done", "failed", "skipped"), 0)
    for row in rows:
        counts[row[1]] = counts.get(row[1], 0) + 1
    flagged = sum(1 for row in rows if row[4] > 0)
    timed = [run for run in runs if run.seconds is not None]
    total = sum(run.seconds or 0.0 for run in timed)
    processed = sum(run.processed for run in timed)
    rate = f"{processed / total:.2f} files/s" if total > 0 else "n/a"
    last = runs[-1].header if runs else {}

    e = _esc
    cards = [
        ("done", counts["done"]),
        ("failed", counts["failed"]),
        ("skipped", counts["skipped"]),
        ("flagged", flagged),
    ]
    parts = ['<section class="summary" aria-label="Summary"><div class="cards">']
    for name, value in cards:
        parts.append(
            f'<div class="card c-{name}"><span class="num" id="count-{name}">{value:,}</span>'
            f'<span class="lbl">{name}</span></div>'
        )
    parts.append(
        f'<div class="card"><span class="num">{e(rate)}</span><span class="lbl">throughput</span></div>'
        f'<div class="card"><span class="num">{e(_duration(total) if timed else "n/a")}</span>'
        f'<span class="lbl">total time</span></div></div>'
    )
    parts.append('<dl class="facts">')
    facts = [
        ("Model", str(last.get("model", "unknown"))),
        ("Model sha256", str(last.get("model_sha256", "unknown"))),
        ("Tool version", str(last.get("tool_version", "unknown"))),
        ("Manifest", manifest.name),
        ("Report written", f"{utc_now_iso()} by colorize-cli {__version__}"),
    ]
    for term, value in facts:
        parts.append(f"<dt>{e(term)}</dt><dd><code>{e(value)}</code></dd>")
    parts.append("</dl>")

    settings = last.get("settings")
    if isinstance(settings, Mapping) and settings:
        parts.append('<details class="settings"><summary>Settings of the last run</summary><table>')
        for key, value in _flatten(settings):
            parts.append(f"<tr><th>{e(key)}</th><td><code>{e(value)}</code></td></tr>")
        parts.append("</table></details>")

    if runs:
        parts.append(f'<details class="runs"><summary>Runs ({len(runs)})</summary><table>')
        parts.append(
            "<tr><th>run</th><th>started</th><th>finished</th><th>time</th>"
            "<th>done</th><th>failed</th><th>skipped</th><th>model</th></tr>"
        )
        for run in runs:
            end_counts = run.end.get("counts") if run.end else None
            end_counts = end_counts if isinstance(end_counts, Mapping) else {}
            if run.end is None:
                finished = "no end record (killed?)"
            elif run.end.get("interrupted"):
                finished = f"{run.end.get('finished', '?')} (interrupted)"
            else:
                finished = str(run.end.get("finished", "?"))
            cells = [
                run.header.get("run_id", "?"),
                run.header.get("started", "?"),
                finished,
                _duration(run.seconds) if run.seconds is not None else "n/a",
                end_counts.get("done", ""),
                end_counts.get("failed", ""),
                end_counts.get("skipped", ""),
                run.header.get("model", "?"),
            ]
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
        parts.append("</table></details>")
    parts.append("</section>")
    return "".join(parts)


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.extend(_flatten(value, name + "."))
        else:
            items.append((name, json.dumps(value, default=str, ensure_ascii=False)))
    return items


def _esc(value: Any) -> str:
    # lone surrogates (undecodable Linux names) cannot be written as UTF-8: shown as '?'
    return html.escape(str(value), quote=True).encode("utf-8", "replace").decode("utf-8")


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


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


def _render_page(title: str, summary: str, data: Mapping[str, Any]) -> str:
    return (
        _PAGE.replace("@@TITLE@@", _esc(title))
        .replace("@@SUMMARY@@", summary)
        .replace("@@DATA@@", script_json(data))
    )


def _atomic_write(dest: Path, payload: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dest) as f:
        f.write(payload)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>@@TITLE@@</title>
<style>
:root { --bg: #f4f4f2; --fg: #1d1d1d; --muted: #666; --line: #d6d6d2; --frame: #bdbdbd;
        --done: #2f6f3e; --failed: #b3261e; --skipped: #7a6a12; --flag: #8a4b00; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
header, main { max-width: 1240px; margin: 0 auto; padding: 0 16px; }
h1 { font-size: 20px; font-weight: 600; margin: 18px 0 10px; overflow-wrap: anywhere; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; overflow-wrap: anywhere; }
.cards { display: flex; flex-wrap: wrap; gap: 8px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.card .num { display: block; font-size: 20px; font-weight: 600; }
.card .lbl { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.c-done .num { color: var(--done); } .c-failed .num { color: var(--failed); }
.c-skipped .num { color: var(--skipped); } .c-flagged .num { color: var(--flag); }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 12px 0 6px; }
.facts dt { color: var(--muted); } .facts dd { margin: 0; }
details { margin: 6px 0; } summary { cursor: pointer; color: var(--muted); }
details table { border-collapse: collapse; margin: 6px 0; background: #fff; }
details th, details td { text-align: left; padding: 2px 10px; border-bottom: 1px solid var(--line); font-weight: normal; }
details th { color: var(--muted); }
.controls { position: sticky; top: 0; z-index: 1; background: var(--bg); border-bottom: 1px solid var(--line);
            display: flex; flex-wrap: wrap; align-items: center; gap: 8px; padding: 10px 0; margin-top: 10px; }
.controls button, .controls select, .controls input { font: inherit; padding: 4px 10px; border: 1px solid var(--frame);
            border-radius: 4px; background: #fff; color: var(--fg); }
.controls button[aria-pressed="true"] { background: var(--fg); color: #fff; border-color: var(--fg); }
.controls input[type="search"] { min-width: 220px; }
.pager { margin-left: auto; display: flex; align-items: center; gap: 6px; }
.pager span { color: var(--muted); min-width: 190px; text-align: center; }
.row { display: grid; grid-template-columns: 232px 232px 1fr; gap: 12px; padding: 12px 0; border-bottom: 1px solid var(--line); }
.thumb { width: 232px; height: 232px; object-fit: contain; background: #808080; display: block; border-radius: 3px; }
.noimg { width: 232px; height: 232px; display: flex; align-items: center; justify-content: center;
         background: #e4e4e0; color: var(--muted); border-radius: 3px; font-size: 12px; }
.noimg.wide { grid-column: span 2; width: auto; height: 44px; }
.info { min-width: 0; }
.name { font: 600 14px/1.35 ui-monospace, "DejaVu Sans Mono", monospace; margin: 0 0 4px; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; color: #fff; font-size: 12px; margin-right: 6px; }
.st-done .badge { background: var(--done); } .st-failed .badge { background: var(--failed); }
.st-skipped .badge { background: var(--skipped); } .st-other .badge { background: var(--muted); }
.meta { color: var(--muted); }
.reason { margin: 6px 0; padding: 6px 10px; background: #fff; border-left: 3px solid var(--failed); overflow-wrap: anywhere; }
.st-skipped .reason { border-left-color: var(--skipped); }
.flags { margin: 6px 0; padding: 0; list-style: none; }
.flags li { display: inline-block; margin: 0 6px 4px 0; padding: 1px 8px; border-radius: 10px; background: #fbe9d0; color: var(--flag); font-size: 12px; }
.measures, .notes { color: var(--muted); font-size: 12px; margin: 4px 0; }
.empty { padding: 40px 0; color: var(--muted); text-align: center; }
a { color: inherit; }
</style>
</head>
<body>
<header>
<h1>@@TITLE@@</h1>
@@SUMMARY@@
</header>
<main>
<div class="controls" role="toolbar" aria-label="Filter and sort">
  <button type="button" data-filter="all">All</button>
  <button type="button" data-filter="failed">Failed</button>
  <button type="button" data-filter="skipped">Skipped</button>
  <button type="button" data-filter="flagged">Flagged</button>
  <label>Sort <select id="sort">
    <option value="look">needs a look</option>
    <option value="name">name</option>
    <option value="slow">slowest first</option>
    <option value="order">processing order</option>
  </select></label>
  <input type="search" id="search" placeholder="filter by name" aria-label="Filter by name">
  <div class="pager"><button type="button" id="prev" aria-label="Previous page">&#8592;</button>
    <span id="pageinfo"></span>
    <button type="button" id="next" aria-label="Next page">&#8594;</button></div>
</div>
<noscript><p class="empty">The file list needs JavaScript (it runs locally; nothing is fetched).</p></noscript>
<div id="rows"></div>
</main>
<script type="application/json" id="report-data">@@DATA@@</script>
<script>
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var C = {};
  DATA.cols.forEach(function (name, i) { C[name] = i; });
  var ROWS = DATA.rows;
  var SIZE = DATA.pageSize;
  var FILTERS = ["all", "failed", "skipped", "flagged"];
  var SORTS = ["look", "name", "slow", "order"];
  var STATUS = { done: 1, failed: 0, skipped: 2 };
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var state = { filter: "all", sort: "look", q: "", page: 1 };
  var view = [];

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function readHash() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ""));
    if (FILTERS.indexOf(p.get("filter")) >= 0) state.filter = p.get("filter");
    if (SORTS.indexOf(p.get("sort")) >= 0) state.sort = p.get("sort");
    state.q = p.get("q") || "";
    state.page = Math.max(1, parseInt(p.get("page"), 10) || 1);
  }

  function writeHash() {
    var p = new URLSearchParams();
    p.set("filter", state.filter); p.set("sort", state.sort); p.set("page", String(state.page));
    if (state.q) p.set("q", state.q);
    try { history.replaceState(null, "", "#" + p.toString()); } catch (e) { /* file: quirks */ }
  }

  function keep(r) {
    if (state.filter === "failed" && r[C.status] !== "failed") return false;
    if (state.filter === "skipped" && r[C.status] !== "skipped") return false;
    if (state.filter === "flagged" && !(r[C.score] > 0)) return false;
    return !state.q || r[C.rel].toLowerCase().indexOf(state.q.toLowerCase()) >= 0;
  }

  var ORDER = {
    look: function (a, b) {
      var ra = ROWS[a], rb = ROWS[b];
      var fa = ra[C.status] === "failed" ? 0 : 1, fb = rb[C.status] === "failed" ? 0 : 1;
      return (fa - fb) || (rb[C.score] - ra[C.score]) || (a - b);
    },
    name: function (a, b) { return collator.compare(ROWS[a][C.rel], ROWS[b][C.rel]) || (a - b); },
    slow: function (a, b) {
      var sa = ROWS[a][C.seconds], sb = ROWS[b][C.seconds];
      return ((sb === null ? -1 : sb) - (sa === null ? -1 : sa)) || (a - b);
    },
    order: function (a, b) { return a - b; }
  };

  function refilter() {
    view = [];
    for (var i = 0; i < ROWS.length; i++) if (keep(ROWS[i])) view.push(i);
    view.sort(ORDER[state.sort]);
  }

  function thumb(r, which, label) {
    var fig = el("figure");
    fig.style.margin = "0";
    if (r[C.has] & which) {
      var img = el("img", "thumb");
      img.setAttribute("loading", "lazy");
      img.setAttribute("decoding", "async");
      img.alt = label + " of " + r[C.rel];
      img.src = DATA.thumbs + r[C.thumb] + DATA.suffix[which - 1];
      fig.appendChild(img);
    } else {
      fig.appendChild(el("div", "noimg", "no " + label.toLowerCase()));
    }
    return fig;
  }

  function relativeHref(path) {
    var parts = path.split("/");
    if (!path || parts[0] === "" || parts.indexOf("..") >= 0) return null;
    return parts.map(encodeURIComponent).join("/");
  }

  function rowNode(i) {
    var r = ROWS[i];
    var status = r[C.status];
    var node = el("article", "row st-" + (status in STATUS ? status : "other"));
    node.setAttribute("data-status", status);
    if (r[C.has]) {
      node.appendChild(thumb(r, 1, "Original"));
      node.appendChild(thumb(r, 2, "Colorized"));
    } else {
      node.appendChild(el("div", "noimg wide", "no preview"));
    }
    var info = el("div", "info");
    info.appendChild(el("h2", "name", r[C.rel]));
    var meta = el("div", "meta");
    meta.appendChild(el("span", "badge", status));
    var bits = [];
    if (r[C.seconds] !== null) bits.push(r[C.seconds].toFixed(2) + " s");
    if (r[C.width] !== null && r[C.height] !== null) bits.push(r[C.width] + " \\u00d7 " + r[C.height] + " px");
    meta.appendChild(el("span", "facts-line", bits.join(" \\u00b7 ")));
    info.appendChild(meta);
    if (r[C.reason]) info.appendChild(el("p", "reason", r[C.reason]));
    if (r[C.flags].length) {
      var ul = el("ul", "flags");
      r[C.flags].forEach(function (f) { ul.appendChild(el("li", "flag", f)); });
      info.appendChild(ul);
    }
    if (r[C.colorfulness] !== null) {
      var m = "colourfulness " + r[C.colorfulness].toFixed(1);
      if (r[C.flat_chroma] !== null) m += " \\u00b7 chroma in flat areas " + r[C.flat_chroma].toFixed(1);
      if (r[C.score] > 0) m += " \\u00b7 look score " + r[C.score].toFixed(2);
      info.appendChild(el("p", "measures", m));
    }
    if (r[C.output]) {
      var out = el("p", "notes");
      var href = relativeHref(r[C.output]);
      out.appendChild(document.createTextNode("output: "));
      var link = el(href ? "a" : "span", "output", r[C.output]);
      if (href) { link.href = href; link.target = "_blank"; link.rel = "noopener"; }
      out.appendChild(link);
      info.appendChild(out);
    }
    if (r[C.notes].length) info.appendChild(el("p", "notes", "notes: " + r[C.notes].join("; ")));
    node.appendChild(info);
    return node;
  }

  function render() {
    var pages = Math.max(1, Math.ceil(view.length / SIZE));
    state.page = Math.min(Math.max(1, state.page), pages);
    var start = (state.page - 1) * SIZE, stop = Math.min(view.length, start + SIZE);
    var frag = document.createDocumentFragment();
    for (var k = start; k < stop; k++) frag.appendChild(rowNode(view[k]));
    if (!view.length) frag.appendChild(el("p", "empty", "No files match."));
    document.getElementById("rows").replaceChildren(frag);
    document.getElementById("pageinfo").textContent = view.length
      ? "page " + state.page + " of " + pages + " \\u00b7 " + (start + 1).toLocaleString() + "\\u2013" + stop.toLocaleString() + " of " + view.length.toLocaleString()
      : "0 files";
    document.getElementById("prev").disabled = state.page <= 1;
    document.getElementById("next").disabled = state.page >= pages;
    document.querySelectorAll("[data-filter]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-filter") === state.filter));
    });
    document.getElementById("sort").value = state.sort;
    writeHash();
  }

  function update(change, keepPage) {
    for (var key in change) state[key] = change[key];
    if (!keepPage) state.page = 1;
    refilter();
    render();
    window.scrollTo(0, 0);
  }

  var counts = { all: ROWS.length, failed: 0, skipped: 0, flagged: 0 };
  ROWS.forEach(function (r) {
    if (r[C.status] === "failed") counts.failed++;
    if (r[C.status] === "skipped") counts.skipped++;
    if (r[C.score] > 0) counts.flagged++;
  });
  document.querySelectorAll("[data-filter]").forEach(function (b) {
    var f = b.getAttribute("data-filter");
    b.textContent = b.textContent + " (" + counts[f].toLocaleString() + ")";
    b.addEventListener("click", function () { update({ filter: f }); });
  });
  document.getElementById("sort").addEventListener("change", function (e) { update({ sort: e.target.value }); });
  var search = document.getElementById("search");
  var timer = null;
  search.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { update({ q: search.value }); }, 150);
  });
  function turn(delta) { state.page += delta; render(); window.scrollTo(0, 0); }
  document.getElementById("prev").addEventListener("click", function () { turn(-1); });
  document.getElementById("next").addEventListener("click", function () { turn(1); });
  document.addEventListener("keydown", function (e) {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    if (e.key === "ArrowLeft" && state.page > 1) turn(-1);
    if (e.key === "ArrowRight" && state.page * SIZE < view.length) turn(1);
  });

  readHash();
  search.value = state.q;
  var page = state.page;
  refilter();
  state.page = page;
  render();
})();
</script>
</body>
</html>
"""
